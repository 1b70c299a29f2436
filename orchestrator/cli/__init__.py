"""The `longscribe` command: `serve` and `transcribe`; nothing imports from here."""
