"""The project's Optuna sweeper for Hydra (`hydra/sweeper=optuna`, used by `hparams_search=optuna`)."""
