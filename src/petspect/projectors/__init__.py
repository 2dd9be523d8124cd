"""petspect.projectors (see the module docstrings)."""
