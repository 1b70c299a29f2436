"""Step 2, the plan: macro cuts moved into pauses, and the language heard in the first speech."""
