"""Measuring a model on fixed batches: the one evaluation function shared by the engine and
every probe, with BatchNorm statistics re-estimated when asked."""
