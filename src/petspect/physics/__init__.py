"""petspect.physics (see the module docstrings)."""
