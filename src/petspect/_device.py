"""Device selection. Library code never picks a device: it follows its inputs, or the device it is given.

:func:`resolve_device` turns a CLI ``--device`` value into a device (``auto`` = CUDA when present);
:func:`require_device` checks a device handed to a library function, refusing CUDA on a machine without
it instead of falling back to the CPU.
"""

from __future__ import annotations

from petspect.errors import InputError


def resolve_device(name: str | None = "auto"):
    """Return a ``torch.device`` for a CLI ``--device`` value.

    ``"auto"`` (or None) picks CUDA when available, else the CPU. ``"cpu"``, ``"cuda"`` and
    ``"cuda:N"`` are taken as given; asking for CUDA on a machine without it raises InputError.
    """
    import torch

    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} asked for but CUDA is not available on this machine")
    return dev


def require_device(device=None):
    """The ``torch.device`` of a library ``device=`` argument (None = the CPU), refused when unusable.

    Raises
    ------
    InputError
        For an unknown device name, or CUDA asked for on a machine without CUDA (never a silent CPU run).
    """
    import torch

    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device {str(dev)!r} asked for but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device {str(dev)!r} asked for but this machine has {torch.cuda.device_count()} GPU(s)")
    return dev


def simulation_device(name: str | None = "auto"):
    """The device a cohort is simulated on for a CLI ``--device`` value.

    ``auto`` (or None) gives the CPU, so that a cohort's files are the same on every machine (random draws
    on CUDA differ from the CPU's); an explicit ``cpu``, ``cuda`` or ``cuda:N`` is used as given, and CUDA
    on a machine without it raises :class:`~petspect.errors.InputError`.
    """
    return require_device(None if name in (None, "auto") else name)


def device_name(ctx) -> str:
    """The raw global ``--device`` value of a Typer context (``"auto"`` when none)."""
    obj = (ctx.find_root().obj or {}) if ctx is not None else {}
    return str(obj.get("device", "auto"))


def cohort_device(device=None):
    """The device of a cohort simulation: the CPU, or a clear refusal.

    Cohort subjects are simulated on the CPU: the cohort's system models (:mod:`petspect.simulate.systems`)
    are built there. A CUDA request is refused with :class:`~petspect.errors.InputError` (never a silent CPU
    run); so is CUDA on a machine without it.
    """
    dev = require_device(device)
    if dev.type != "cpu":
        raise InputError(f"cohort simulation runs on the CPU in this version (its system models are built "
                         f"there); {str(dev)!r} was asked for: use --device cpu or auto")
    return dev
