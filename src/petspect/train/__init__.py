"""petspect.train (see the module docstrings)."""
