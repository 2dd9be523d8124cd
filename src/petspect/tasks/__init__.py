"""petspect.tasks (see the module docstrings)."""
