"""petspect.metrics (see the module docstrings)."""
