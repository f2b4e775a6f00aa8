"""Using a trained autoencoder: evaluation, codes, anomaly detection, and their metrics and figures."""
