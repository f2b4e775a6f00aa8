"""A run's folder read back: its record (metrics.json), the config it was trained with, its checkpoints."""
