"""Every benchmark of ``landscape bench``: training throughput against a plain loop,
regulariser overhead, the CKA matrix and the barrier curve, under one set of options."""
