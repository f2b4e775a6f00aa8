"""Shared helpers: one-line errors, the commands' setting, atomic writes, tables."""
