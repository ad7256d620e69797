"""Loss-landscape geometry between runs: weight-space paths, barriers and planes."""
