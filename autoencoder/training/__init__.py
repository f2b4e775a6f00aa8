"""Training runs: the Trainer, its callbacks and loggers from config, checkpoints, precision."""
