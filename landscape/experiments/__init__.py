"""Experiments that train runs and measure them: the demo, the block-shuffle experiment and
the reproduced published claims."""
