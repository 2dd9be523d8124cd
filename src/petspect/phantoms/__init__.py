"""petspect.phantoms (see the module docstrings)."""
