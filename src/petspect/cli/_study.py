"""The ``petspect study`` command group: one study per AI task on the shared evaluation protocol.

Each task's command module adds its study here, so no two modules edit the same file::

    from petspect.cli._study import study_app

    def register(app):
        study_app.command("recon")(study_recon)

:mod:`petspect.cli.main` adds the group to the application once every ``cmd_*`` module is registered.
Every study writes ``metrics.json``, ``summary.json`` and ``report/index.html`` into ``--out`` through
:func:`petspect.evaluation.study.write_study`.
"""

from __future__ import annotations

import typer

study_app = typer.Typer(help="One study per AI task on the shared evaluation protocol (petspect.evaluation): "
                             "metrics.json, summary.json and report/index.html in OUT.", no_args_is_help=True)

#: The preset names every study accepts.
STUDY_PRESET_NAMES = ("tiny", "quick", "full")


def study_preset(preset: str) -> str:
    """The canonical preset name; an unknown one raises ConfigError listing the names."""
    from petspect.errors import ConfigError

    name = str(preset).strip().lower()
    if name not in STUDY_PRESET_NAMES:
        raise ConfigError(f"unknown study preset {preset!r}; choose one of {list(STUDY_PRESET_NAMES)}")
    return name
