"""Step 1, media: the URL guard, the relay FFmpeg reads through, the range check, ffprobe,
and FFmpeg range reads to PCM."""
