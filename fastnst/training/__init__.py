"""Training a style network: the TOML config, seeded photo crops, the trainer with exact resume, checkpoints, and
the quality checks run on trained models."""
