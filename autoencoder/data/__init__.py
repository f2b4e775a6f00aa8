"""Datasets as LightningDataModules over images held in memory (the contract is in images.py)."""
