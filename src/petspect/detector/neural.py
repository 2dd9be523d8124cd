"""Neural positioning estimators (MLP and CNN) with the fit/predict interface of the baselines."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch

from petspect.detector.models import (PositionCNN, PositionMLP, TrainSettings, fit_regressor, load_model_folder,
                                      predict, restore, save_model_folder)
from petspect.detector.photodetector import SiPMArray
from petspect.detector.positioning import _check, normalised_features
from petspect.errors import ConfigError, InputError

KINDS = ("mlp", "cnn")


class NeuralPositioner:
    """Predict ``(x, y, doi)`` (mm) from SiPM signals with a :class:`PositionMLP` or :class:`PositionCNN`.

    Parameters
    ----------
    kind : {"mlp", "cnn"}
    sipm : SiPMArray
        Sets the input size and the x/y scaling (targets are divided by the half face).
    thickness_mm : float
        Sets the depth scaling.
    settings : TrainSettings
    device : torch.device or str
        Where the network is trained and run.
    channels : int
        CNN channels (ignored for the MLP).
    """

    def __init__(self, kind: str, sipm: SiPMArray, thickness_mm: float, *, settings: TrainSettings = TrainSettings(),
                 device: torch.device | str = "cpu", channels: int = 32) -> None:
        if kind not in KINDS:
            raise ConfigError(f"unknown network kind {kind!r}; choose one of {KINDS}")
        self.kind, self.sipm, self.thickness_mm = kind, sipm, float(thickness_mm)
        self.settings, self.device, self.channels = settings, torch.device(device), channels
        self.name = kind
        self.history_: dict | None = None
        self.trained_axes_ = [True, True, True]
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG state
            torch.manual_seed(settings.seed)
            self.model = self._build().to(self.device)

    def _build(self) -> torch.nn.Module:
        if self.kind == "mlp":
            return PositionMLP(self.sipm.n_x * self.sipm.n_y + 1)
        return PositionCNN(self.sipm.n_y, self.sipm.n_x, channels=self.channels)

    @property
    def _scale(self) -> np.ndarray:
        return np.array([self.sipm.size_x_mm / 2, self.sipm.size_y_mm / 2, self.thickness_mm / 2])

    @property
    def _shift(self) -> np.ndarray:
        return np.array([0.0, 0.0, self.thickness_mm / 2])

    def inputs(self, signals: np.ndarray) -> torch.Tensor:
        """Network input: features (n, n_pix + 1) for the MLP, maps (n, 2, n_y, n_x) for the CNN."""
        signals = _check(signals)[0]
        if signals.shape[1:] != (self.sipm.n_y, self.sipm.n_x):
            raise InputError(f"signals must be (n, {self.sipm.n_y}, {self.sipm.n_x}), got {signals.shape}")
        feats = torch.from_numpy(normalised_features(signals))
        if self.kind == "mlp":
            return feats
        n = len(signals)
        maps = feats[:, :-1].reshape(n, 1, self.sipm.n_y, self.sipm.n_x) * (self.sipm.n_x * self.sipm.n_y)
        energy = feats[:, -1].reshape(n, 1, 1, 1).expand(n, 1, self.sipm.n_y, self.sipm.n_x)
        return torch.cat([maps, energy], dim=1).contiguous()

    def fit(self, signals: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None) -> NeuralPositioner:
        """Train on events with ``targets`` (n, 3) mm; ``mask`` (n, 3) marks the known labels."""
        signals, targets, mask = _check(signals, targets, mask)
        y = torch.from_numpy(((targets - self._shift) / self._scale).astype(np.float32))
        self.history_ = fit_regressor(self.model, self.inputs(signals), y, torch.from_numpy(mask),
                                      settings=self.settings, description=f"training {self.kind}")
        self.trained_axes_ = [bool(mask[:, i].sum() >= 10) for i in range(3)]
        return self

    def predict(self, signals: np.ndarray) -> np.ndarray:
        """Estimated ``(x, y, doi)`` (mm), shape (n, 3)."""
        out = predict(self.model, self.inputs(signals)).numpy().astype(np.float64) * self._scale + self._shift
        out[:, ~np.asarray(self.trained_axes_)] = np.nan  # coordinates without labels (fan beams: depth)
        return out

    def config(self) -> dict:
        """Architecture, scalings and training settings (JSON)."""
        return {"kind": self.kind, "channels": self.channels, "thickness_mm": self.thickness_mm,
                "sipm": self.sipm.to_dict(), "settings": dataclasses.asdict(self.settings),
                "trained_axes": self.trained_axes_,
                "targets": "first-interaction (x, y, doi) mm; scaled by (size_x/2, size_y/2, thickness/2), "
                           "doi shifted by thickness/2", "history": self.history_}

    def save(self, folder: str | os.PathLike, record: dict | None = None) -> None:
        """Save as a model folder (weights.pt, config.json, model_card.md)."""
        cfg = {**self.config(), "data": record or {}}
        card = (f"# petspect detector positioning model: {self.kind}\n\n"
                f"Predicts the first-interaction point (x, y, depth of interaction) in mm in a monolithic "
                f"crystal of thickness {self.thickness_mm} mm read out by a {self.sipm.n_x}x{self.sipm.n_y} "
                f"SiPM array (pitch {self.sipm.pitch_mm} mm) from the per-pixel signals.\n\n"
                "Trained on simulated calibration data (see config.json 'data'); valid only for the "
                "detector configuration recorded there. Not for clinical use.\n")
        save_model_folder(folder, self.model, cfg, card)

    @classmethod
    def load(cls, folder: str | os.PathLike, device: torch.device | str = "cpu") -> NeuralPositioner:
        """Rebuild a saved model (weights loaded with ``weights_only=True``)."""
        state, cfg = load_model_folder(folder)
        obj = cls(cfg["kind"], SiPMArray(**cfg["sipm"]), cfg["thickness_mm"],
                  settings=TrainSettings(**cfg["settings"]), device=device, channels=cfg["channels"])
        restore(obj, state, cfg)
        obj.trained_axes_ = cfg.get("trained_axes", [True, True, True])
        return obj
