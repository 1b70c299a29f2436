"""A macro chunk cut into micro pieces at pauses, each decoded, and segment times set from the audio's own pauses."""
