"""Step 4, assembly: chunk results merged into one ordered transcript, the API answer built, progress prefixes."""
