"""Choosing the non-binary hyperparameters: the advisor's rules, the search spaces and the
Optuna sweep."""
