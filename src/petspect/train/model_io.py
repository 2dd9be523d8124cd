"""A trained model is a folder; this module writes and reads it.

Folder contents
---------------
``model.pt``
    The generator's ``state_dict`` (tensors only: loaded with ``torch.load(weights_only=True)``).
``config.json``
    ``{"network": build_network arguments, "data": {mode, n_slices, input_key, extra_keys, target_key,
    patch_size}, "training": TrainConfig}``.
``normalization.json``
    ``{"inputs": [one normalisation per input modality], "target": normalisation}``.
``model_card.json``
    What the model is for and how it was made: data, dose level, metrics, training, seed, petspect version.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from petspect._fileio import atomic_dir
from petspect._json import json_default
from petspect.errors import DataNotFoundError, FormatError
from petspect.simulate.layout import read_json
from petspect.train.normalization import Normalization, normalization_from_dict

FILES = ("model.pt", "config.json", "normalization.json", "model_card.json")


@dataclass
class TrainedModel:
    """A loaded model: network (eval mode), its data layout, normalisations and card.

    Attributes
    ----------
    network : nn.Module
        ``(B, in_channels, *spatial) -> (B, 1, *spatial)`` on normalised values.
    config : dict
        Content of ``config.json``.
    input_normalizations : list of Normalization
        One per input modality (PET first, then the anatomical channels).
    target_normalization : Normalization
        Maps network outputs back to physical units with ``inverse``.
    card : dict
        Content of ``model_card.json``.
    """

    network: nn.Module
    config: dict[str, Any]
    input_normalizations: list[Normalization]
    target_normalization: Normalization
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        """"2d", "2.5d" or "3d"."""
        return self.config["data"]["mode"]

    @property
    def n_slices(self) -> int:
        return int(self.config["data"].get("n_slices", 1))

    @property
    def patch_size(self) -> tuple[int, ...]:
        return tuple(self.config["data"]["patch_size"])

    @property
    def input_keys(self) -> tuple[str, ...]:
        """Dataset keys of the input modalities, in channel order."""
        d = self.config["data"]
        return (d["input_key"], *d.get("extra_keys", ()))

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    def to(self, device: torch.device | str) -> TrainedModel:
        self.network.to(device)
        return self


def build_from_spec(spec: Mapping[str, Any]) -> nn.Module:
    """Rebuild a network from the ``"network"`` part of ``config.json``."""
    from petspect.nn import build_network

    s = dict(spec)
    kwargs = s.pop("kwargs", {})
    return build_network(s.pop("name"), **s, **kwargs)


def save_model(folder: str | os.PathLike, network: nn.Module, *, network_spec: Mapping[str, Any],
               data: Mapping[str, Any], input_normalizations: Sequence[Normalization],
               target_normalization: Normalization, training: Mapping[str, Any], card: Mapping[str, Any],
               state_dict: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Write a model folder atomically (an existing folder is replaced only once the new one is complete).

    Parameters
    ----------
    folder : path
    network : nn.Module
        Its ``state_dict`` is saved unless ``state_dict`` is given (e.g. the best epoch's weights).
    network_spec : mapping
        :func:`petspect.nn.build_network` arguments (``name``, ``spatial_dims``, ..., ``kwargs``).
    data : mapping
        Data layout (mode, n_slices, input_key, extra_keys, target_key, patch_size).
    input_normalizations, target_normalization
    training : mapping
        The training configuration (JSON-serialisable).
    card : mapping
        Model card content.
    """
    sd = {k: v.detach().cpu() for k, v in (state_dict or network.state_dict()).items()}
    config = {"network": dict(network_spec), "data": dict(data), "training": dict(training)}
    norms = {"inputs": [n.to_dict() for n in input_normalizations], "target": target_normalization.to_dict()}
    with atomic_dir(folder, kind="model") as tmp:
        torch.save(sd, tmp / "model.pt")
        (tmp / "config.json").write_text(json.dumps(config, indent=2, default=json_default), encoding="utf-8")
        (tmp / "normalization.json").write_text(json.dumps(norms, indent=2, default=json_default), encoding="utf-8")
        (tmp / "model_card.json").write_text(json.dumps(dict(card), indent=2, default=json_default), encoding="utf-8")
    return Path(folder)


def load_model(folder: str | os.PathLike, device: torch.device | str | None = None) -> TrainedModel:
    """Load a model folder written by the trainer.

    Parameters
    ----------
    folder : path
        Holds ``model.pt``, ``config.json``, ``normalization.json`` and ``model_card.json``.
    device : torch.device or str, optional
        Where the network goes (default: the CPU).

    Returns
    -------
    TrainedModel
        Network in eval mode.
    """
    from petspect._fileio import require_regular
    from petspect.io._guard import reading

    p = require_regular(folder, what="model folder")
    if not p.is_dir():
        raise DataNotFoundError("not a petspect model folder (no such folder)", path=p)
    missing = [f for f in FILES if not (p / f).is_file()]
    if missing:
        raise DataNotFoundError(f"not a petspect model folder: missing {missing}", path=p)
    with reading(p, "model folder"):
        config = read_json(p / "config.json")
        norms = read_json(p / "normalization.json")
        card = read_json(p / "model_card.json")
        spec, data = config.get("network"), config.get("data")
        if not isinstance(spec, dict) or not isinstance(data, dict):
            raise FormatError("config.json needs the objects 'network' and 'data'", path=p / "config.json")
        if not isinstance(norms.get("inputs"), list) or "target" not in norms:
            raise FormatError("normalization.json needs 'inputs' (a list) and 'target'", path=p / "normalization.json")
        try:
            import warnings

            with warnings.catch_warnings():  # a damaged file's pickle protocol warning: the error below says it
                warnings.simplefilter("ignore", UserWarning)
                state = torch.load(p / "model.pt", map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - pickle, zip and weights-only refusals all mean a bad file
            raise FormatError(f"model.pt is not a readable tensor file ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:160] if str(exc) else ''})", path=p / "model.pt") from None
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise FormatError("model.pt does not hold a state dict of tensors", path=p / "model.pt")
        try:
            # build on the meta device first: a damaged config cannot allocate memory, and the shapes are
            # checked against the stored weights before the real network is made
            with torch.device("meta"):
                probe = build_from_spec(spec)
            probe.load_state_dict(state, assign=True)  # checks names and shapes, copies nothing
            net = build_from_spec(spec)
            net.load_state_dict(state)
            inputs = [normalization_from_dict(n) for n in norms["inputs"]]
            target = normalization_from_dict(norms["target"])
        except (KeyError, RuntimeError, TypeError, ValueError, AttributeError) as exc:
            raise FormatError(f"model folder is inconsistent: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''}", path=p) from exc
        bad = [k for k, v in net.state_dict().items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise FormatError(f"model weights hold NaN or infinite values ({', '.join(bad[:3])})", path=p / "model.pt")
    net.eval().to(device if device is not None else "cpu")
    return TrainedModel(net, config, inputs, target, card)
