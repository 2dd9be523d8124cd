"""The ``petspect`` command line: one Typer app, one module per command group (``cmd_*.py``)."""
