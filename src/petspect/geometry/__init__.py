"""petspect.geometry (see the module docstrings)."""
