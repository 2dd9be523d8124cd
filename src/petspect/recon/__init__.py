"""petspect.recon (see the module docstrings)."""
