"""Generation jobs (which models answer which prompts, how) and their generations."""
