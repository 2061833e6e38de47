"""matchwijs pipelines: thin entry points (the CLI and the DVC stages)."""
