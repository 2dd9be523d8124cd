"""petspect.io (see the module docstrings)."""
