"""Segmentation networks (MONAI DynUNet, SegResNet), their inputs, sliding-window inference and model folders.

Inputs are channels ``(C, z, y, x)`` named by :attr:`SegNetSpec.inputs`: the PET in SUV divided by
:data:`SUV_SCALE` (and clipped at :data:`SUV_CLIP`) and/or the CT in HU divided by 1000 (clipped to [-1, 2]),
on one grid. The output is logits over :attr:`SegNetSpec.classes`: a lesion network has (background, lesion)
and its mask is ``softmax[1] >= threshold`` (then :mod:`petspect.segmentation.postprocess`); an organ network
(CT only) has background and one class per organ, and its label map is the argmax.

* ``dynunet`` -- MONAI's DynUNet in the nnU-Net configuration style (Isensee et al, Nat Methods 2021):
  3x3x3 kernels, instance normalisation, leaky ReLU, strides chosen per axis so that the coarse z axis of a
  PET (few slices) is pooled less than y and x;
* ``segresnet`` -- MONAI's SegResNet (Myronenko, BrainLes 2018).

A model folder holds ``segmenter.json`` (the :class:`SegNetSpec`, the input scaling, the training record)
and ``model.pt`` (the state dict, loaded with ``weights_only=True``).
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petspect.errors import FormatError, InputError

__all__ = ["NetworkKind", "SegNetSpec", "Segmenter", "SUV_SCALE", "SUV_CLIP", "INPUT_KINDS", "build_network",
           "input_channels", "predict_softmax", "predict_probability", "predict_lesions", "save_segmenter",
           "load_segmenter"]

SUV_SCALE = 5.0
SUV_CLIP = 50.0
MODEL_JSON = "segmenter.json"
MODEL_WEIGHTS = "model.pt"
#: Channels of each kind of input.
INPUT_KINDS = {"pet": 1, "pet+ct": 2, "ct": 1, "ct_windows": 2}
#: Input kinds made of the CT alone (organ networks).
CT_ONLY_INPUTS = ("ct", "ct_windows")
#: Soft-tissue window of the ``ct_windows`` input's second channel: (HU - centre) / scale, clipped to +-1.5.
CT_SOFT_WINDOW_HU = (40.0, 100.0)


class NetworkKind(str, Enum):
    DYNUNET = "dynunet"
    SEGRESNET = "segresnet"


@dataclass(frozen=True)
class SegNetSpec:
    """A segmentation network's architecture.

    Attributes
    ----------
    kind : NetworkKind
    in_channels : int
        Number of input channels; must match ``inputs``.
    filters : tuple of int
        DynUNet: channels per level; SegResNet: ``filters[0]`` is ``init_filters``.
    z_strides : tuple of int
        DynUNet: the z stride of each downsampling (y and x always 2), e.g. (1, 2, 2).
    patch_zyx : tuple of int
        Training patch and sliding-window size (voxels); divisible by the pooling.
    dropout : float
    inputs : {"pet", "pet+ct", "ct", "ct_windows"}, optional
        What the channels are; default from ``in_channels`` (1: "pet", 2: "pet+ct") for folders written
        before organ networks existed.
    classes : tuple of str
        Output classes, background first: ("background", "lesion") for a lesion network, organ names for
        an organ network.
    """

    kind: NetworkKind = NetworkKind.DYNUNET
    in_channels: int = 2
    filters: tuple[int, ...] = (16, 32, 64, 128)
    z_strides: tuple[int, ...] = (1, 2, 2)
    patch_zyx: tuple[int, int, int] = (16, 48, 48)
    dropout: float = 0.0
    inputs: str | None = None
    classes: tuple[str, ...] = ("background", "lesion")

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", NetworkKind(getattr(self.kind, "value", self.kind)))
        object.__setattr__(self, "filters", tuple(int(f) for f in self.filters))
        object.__setattr__(self, "z_strides", tuple(int(s) for s in self.z_strides))
        object.__setattr__(self, "patch_zyx", tuple(int(p) for p in self.patch_zyx))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        if self.inputs is None:
            object.__setattr__(self, "inputs", {1: "pet", 2: "pet+ct"}.get(self.in_channels, "?"))
        if self.inputs not in INPUT_KINDS:
            raise InputError(f"inputs must be one of {sorted(INPUT_KINDS)}, got {self.inputs!r}")
        if self.in_channels != INPUT_KINDS[self.inputs]:
            raise InputError(f"in_channels must be {INPUT_KINDS[self.inputs]} for inputs {self.inputs!r} "
                             f"(1: PET or CT, 2: PET and CT), got {self.in_channels}")
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes) or self.classes[0] != "background":
            raise InputError(f"classes must be distinct names, 'background' first and at least one more, got "
                             f"{self.classes}")
        if self.kind is NetworkKind.DYNUNET and (len(self.filters) < 3 or len(self.z_strides) != len(self.filters) - 1):
            raise InputError("DynUNet needs at least 3 levels (filters) and one z stride per downsampling "
                             "(len(filters) - 1)")
        if self.kind is NetworkKind.SEGRESNET and self.filters[0] % 8:
            raise InputError(f"SegResNet's init filters must be a multiple of 8 (group norm), got {self.filters[0]}")
        pool = self.pooling()
        if any(p % f for p, f in zip(self.patch_zyx, pool)):
            raise InputError(f"patch {self.patch_zyx} must be divisible by the network's pooling {pool}")

    def pooling(self) -> tuple[int, int, int]:
        if self.kind is NetworkKind.DYNUNET:
            n = len(self.z_strides)
            return int(np.prod(self.z_strides)), 2 ** n, 2 ** n
        return 4, 4, 4  # SegResNet with blocks_down (1, 2, 2): two downsamplings

    @property
    def out_channels(self) -> int:
        return len(self.classes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = self.kind.value
        d["classes"] = list(self.classes)
        return d


def build_network(spec: SegNetSpec) -> torch.nn.Module:
    """The MONAI network of ``spec`` (``spec.out_channels`` output classes), weights from torch's current RNG."""
    if spec.kind is NetworkKind.DYNUNET:
        from monai.networks.nets import DynUNet

        strides = [[1, 1, 1]] + [[s, 2, 2] for s in spec.z_strides]
        return DynUNet(3, spec.in_channels, spec.out_channels, kernel_size=[[3, 3, 3]] * len(strides), strides=strides,
                       upsample_kernel_size=strides[1:], filters=list(spec.filters), dropout=spec.dropout or None,
                       norm_name="instance", act_name=("leakyrelu", {"negative_slope": 0.01, "inplace": True}),
                       res_block=False)
    from monai.networks.nets import SegResNet

    return SegResNet(3, init_filters=spec.filters[0], in_channels=spec.in_channels, out_channels=spec.out_channels,
                     dropout_prob=spec.dropout or None, blocks_down=(1, 2, 2), blocks_up=(1, 1))


def _f32(a: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a.detach().cpu() if hasattr(a, "detach") else a, dtype=np.float32))


def input_channels(suv: Any, ct_hu: Any = None, *, in_channels: int = 2, inputs: str | None = None) -> torch.Tensor:
    """Network input ``(C, z, y, x)`` float32 from an SUV image and/or a CT in HU.

    ``inputs`` ("pet", "pet+ct", "ct") names the channels; default from ``in_channels`` (1: PET, 2: PET + CT).
    For ``"ct"`` the ``suv`` argument is ignored (may be None). ``"ct_windows"`` is the CT twice: HU / 1000
    clipped to [-1, 2] (air, lung, bone) and a soft-tissue window (:data:`CT_SOFT_WINDOW_HU`, -110 to 190 HU),
    where organs differ by 10-30 HU that the first channel's scale hides.
    """
    kind = inputs or {1: "pet", 2: "pet+ct"}.get(in_channels)
    if kind not in INPUT_KINDS:
        raise InputError(f"inputs must be one of {sorted(INPUT_KINDS)}, got {kind!r}")
    chans = []
    if kind not in CT_ONLY_INPUTS:
        if suv is None:
            raise InputError("this model takes a PET channel (SUV)")
        chans.append(torch.clamp(_f32(suv), 0.0, SUV_CLIP) / SUV_SCALE)
    if kind != "pet":
        if ct_hu is None:
            raise InputError("this model takes a CT channel: give the CT (--ct)")
        c = _f32(ct_hu)
        if chans and c.shape != chans[0].shape:
            raise InputError(f"CT {tuple(c.shape)} and PET {tuple(chans[0].shape)} must be on one grid")
        chans.append(torch.clamp(c / 1000.0, -1.0, 2.0))
        if kind == "ct_windows":
            chans.append(torch.clamp((c - CT_SOFT_WINDOW_HU[0]) / CT_SOFT_WINDOW_HU[1], -1.5, 1.5))
    return torch.stack(chans)


@torch.no_grad()
def predict_softmax(net: torch.nn.Module, x: torch.Tensor, patch_zyx: tuple[int, int, int], *,
                    overlap: float = 0.5, batch_size: int = 2, flips: bool = False) -> torch.Tensor:
    """Class probabilities ``(K, z, y, x)`` by Gaussian-weighted sliding-window inference (MONAI), on the CPU.

    With ``flips`` the softmax is averaged over the input as given and flipped along y, x and both (the
    flips the training augments with; test-time augmentation, 4x the inference time).
    """
    from monai.inferers import sliding_window_inference

    net.eval()
    dev = next(net.parameters()).device
    xb = x[None].to(dev)
    total = None
    for dims in ([(), (1,), (2,), (1, 2)] if flips else [()]):
        d = [k + 2 for k in dims]  # (batch, channel, z, y, x): y and x are dims 3 and 4
        xi = xb.flip(d) if d else xb
        logits = sliding_window_inference(xi, patch_zyx, batch_size, net, overlap=overlap, mode="gaussian")
        p = torch.softmax(logits, dim=1)
        p = p.flip(d) if d else p
        total = p if total is None else total + p
    return (total / (4 if flips else 1))[0].cpu()


def predict_probability(net: torch.nn.Module, x: torch.Tensor, patch_zyx: tuple[int, int, int], *,
                        overlap: float = 0.5, batch_size: int = 2) -> torch.Tensor:
    """Lesion (class 1) probability ``(z, y, x)`` by sliding-window inference (:func:`predict_softmax`)."""
    return predict_softmax(net, x, patch_zyx, overlap=overlap, batch_size=batch_size)[1]


@dataclass
class Segmenter:
    """A trained segmentation network with its spec, name, post-processing and training record.

    ``threshold`` and ``min_component_ml`` are the lesion post-processing
    (:class:`~petspect.segmentation.postprocess.PostProcess`, chosen on validation by the study); ``flips``
    averages the softmax over y/x flips at inference (:func:`predict_softmax`).
    """

    net: torch.nn.Module
    spec: SegNetSpec
    name: str
    threshold: float = 0.5
    record: dict[str, Any] = field(default_factory=dict)
    min_component_ml: float = 0.0
    flips: bool = False

    def inputs(self, suv: Any, ct_hu: Any = None) -> torch.Tensor:
        return input_channels(suv, ct_hu, in_channels=self.spec.in_channels, inputs=self.spec.inputs)

    def softmax(self, suv: Any, ct_hu: Any = None) -> torch.Tensor:
        """Class probabilities ``(K, z, y, x)``."""
        return predict_softmax(self.net, self.inputs(suv, ct_hu), self.spec.patch_zyx, flips=self.flips)

    def probability(self, suv: Any, ct_hu: Any = None) -> torch.Tensor:
        """Lesion (class 1) probability ``(z, y, x)``."""
        return self.softmax(suv, ct_hu)[1]

    def labels(self, ct_hu: Any, suv: Any = None) -> np.ndarray:
        """Label map ``(z, y, x)`` int16 (index into ``spec.classes``; 0 background) by the argmax."""
        return self.softmax(suv, ct_hu).argmax(0).numpy().astype(np.int16)


def predict_lesions(seg: Segmenter, pet_suv: Any, ct: Any = None, *, exclude: Any = None) -> np.ndarray:
    """Boolean lesion mask of an SUV Volume (and its CT Volume on the same grid, for 2-channel models).

    The model's post-processing (probability threshold, smallest component) is applied; ``exclude`` (bool
    mask, e.g. organs with physiological uptake) is removed before the component size test.
    """
    from petspect.segmentation.postprocess import PostProcess, lesion_mask
    from petspect.volume import Volume

    if seg.spec.classes[1:] != ("lesion",):
        raise InputError(f"{seg.name} is not a lesion model (classes {list(seg.spec.classes)})")
    if isinstance(pet_suv, Volume) and not pet_suv.unit.upper().startswith("SUV"):
        raise InputError(f"the network takes SUV; this PET is in {pet_suv.unit!r}")
    s = pet_suv.numpy() if isinstance(pet_suv, Volume) else np.asarray(pet_suv)
    c = ct.numpy() if isinstance(ct, Volume) else ct
    sp = pet_suv.spacing_mm if isinstance(pet_suv, Volume) else (1.0, 1.0, 1.0)
    if seg.min_component_ml > 0 and not isinstance(pet_suv, Volume):
        raise InputError("this model drops small components: give the PET as a Volume (its spacing)")
    return lesion_mask(seg.probability(s, c), sp, PostProcess(seg.threshold, seg.min_component_ml), exclude=exclude)


def save_segmenter(folder: str | os.PathLike, seg: Segmenter, *, overwrite: bool = False) -> Path:
    """Write a model folder (``segmenter.json`` + ``model.pt``) atomically."""
    from petspect._fileio import atomic_dir, check_output_path
    from petspect._json import to_jsonable

    out = check_output_path(folder, overwrite=overwrite, kind="segmentation-model")
    doc = {"name": seg.name, "spec": seg.spec.to_dict(), "threshold": seg.threshold,
           "min_component_ml": seg.min_component_ml, "flips": seg.flips,
           "input": {"suv_scale": SUV_SCALE, "suv_clip": SUV_CLIP, "ct": "HU / 1000 clipped to [-1, 2]"},
           "record": to_jsonable(seg.record)}
    with atomic_dir(out, kind="segmentation-model") as tmp:
        torch.save({k: v.detach().cpu() for k, v in seg.net.state_dict().items()}, tmp / MODEL_WEIGHTS)
        (tmp / MODEL_JSON).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return out


def load_segmenter(folder: str | os.PathLike, *, device: Any = None) -> Segmenter:
    """Read a model folder written by :func:`save_segmenter`."""
    from petspect.io._paths import require_exists

    p = require_exists(folder)
    js, wt = p / MODEL_JSON, p / MODEL_WEIGHTS
    if not js.is_file() or not wt.is_file():
        raise FormatError(f"not a segmentation model folder (needs {MODEL_JSON} and {MODEL_WEIGHTS})", path=p)
    try:
        doc = json.loads(js.read_text(encoding="utf-8"))
        spec = SegNetSpec(**doc["spec"])
    except (ValueError, KeyError, TypeError) as e:
        raise FormatError(f"unreadable {MODEL_JSON}: {e}", path=js) from None
    net = build_network(spec)
    try:
        net.load_state_dict(torch.load(wt, map_location="cpu", weights_only=True))
    except (EOFError, pickle.UnpicklingError):
        raise FormatError("empty, truncated or not a PyTorch weights file", path=wt) from None
    except (RuntimeError, OSError, ValueError) as e:
        raise FormatError(f"weights do not fit the network of {MODEL_JSON}: {str(e)[:200]}", path=wt) from None
    if device is not None:
        net = net.to(device)
    net.eval()
    return Segmenter(net, spec, str(doc.get("name", spec.kind.value)), float(doc.get("threshold", 0.5)),
                     dict(doc.get("record", {})), float(doc.get("min_component_ml", 0.0)),
                     bool(doc.get("flips", False)))
