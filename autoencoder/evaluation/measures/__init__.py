"""The evaluation's measures, one module each; `base` says what a measure is."""
