"""Device selection for the CLI. Library code never picks a device: it follows its inputs."""

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
