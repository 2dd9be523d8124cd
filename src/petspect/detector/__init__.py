"""petspect.detector (see the module docstrings)."""
