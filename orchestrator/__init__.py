"""longscribe's orchestrator: media URL -> macro chunks -> Triton -> transcript."""
