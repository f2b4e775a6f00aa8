"""Sweeps: the summary of a multirun folder."""
