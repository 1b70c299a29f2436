"""Jobs: transcriptions run in the background, watched by polling or server-sent events, cancelled, collected."""
