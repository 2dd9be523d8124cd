"""petspect.report (see the module docstrings)."""
