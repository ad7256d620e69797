"""Loss-landscape geometry between runs, and ``landscape demo``, the end-to-end tour."""
