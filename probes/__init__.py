"""Measurements of runs (activation capture, CKA, parameter distance, block-shuffled
transfer) and of initial weights on a target before fine-tuning (fit measures). The engine
already records the per-group distance to init in ``run.h5``."""
