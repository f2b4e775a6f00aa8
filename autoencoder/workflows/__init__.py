"""What the commands run over the library: a training run then its evaluation, a sweep's jobs, the one-class anomaly table."""
