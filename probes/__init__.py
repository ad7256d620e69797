"""Measurements of runs (activation capture, CKA, parameter distance, block-shuffled
transfer). The engine already records the per-group distance to init in ``run.h5``."""
