"""petspect.simulate (see the module docstrings)."""
