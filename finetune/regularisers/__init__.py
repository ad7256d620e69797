"""Regularisers: the penalty registry (SP and plain L2, fused over parameter groups), the
Fisher information of L2-SP-Fisher, and the feature regularisers DELTA and BSS."""
