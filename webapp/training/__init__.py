"""Training runs (method, validated config, inputs, lifecycle), their metric points, checkpoints
and saved presets."""
