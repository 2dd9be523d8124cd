"""petspect.nn (see the module docstrings)."""
