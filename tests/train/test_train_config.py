"""The sectioned training configuration: round trips, version-1 (flat) files, overlays, and no global seeding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from petspect.errors import ConfigError
from petspect.train import TrainConfig, Trainer, load_model
from petspect.train.config import (FLAT_FIELDS, DataConfig, LossConfig, OptimConfig, TrainOverlay, load_config)
from petspect.train.normalization import SuvScaling

FLAT = dict(dataset="ds", input_key="recon_d010", target_key="recon_d100", out_dir="run", mode="2d",
            patch_size=(8, 8), channels=(4,), network="resnet", network_kwargs={"n_blocks": 1}, batch_size=2,
            epochs=3, loss={"l1": 1.0, "mse": 0.5}, discriminator={"features": 16, "n_layers": 2}, lr=1e-3,
            normalization={"kind": "suv_scaling", "factor": 2000.0, "unit": "Bq/mL"}, augment=None, seed=3,
            patience=2, card={"tracer": "FDG"})
OLD_MODEL = Path(__file__).parent / "data" / "flat_config_model"


def test_sections_round_trip_and_flat_names_map_onto_them(tmp_path):
    cfg = TrainConfig.from_dict(FLAT)
    assert isinstance(cfg.data, DataConfig) and isinstance(cfg.loss, LossConfig) and isinstance(cfg.optim, OptimConfig)
    assert cfg.data.normalization == SuvScaling(2000.0, "Bq/mL") and cfg.data.augment is None
    assert cfg.loss.terms == {"l1": 1.0, "mse": 0.5} and cfg.loss.discriminator.features == 16
    assert (cfg.optim.lr, cfg.schedule.epochs, cfg.model.kwargs, cfg.seed) == (1e-3, 3, {"n_blocks": 1}, 3)
    assert (cfg.lr, cfg.input_key, cfg.patience, cfg.network_kwargs) == (1e-3, "recon_d010", 2, {"n_blocks": 1})
    doc = cfg.to_dict()
    assert doc["version"] == 2 and set(doc) == {"version", "data", "model", "loss", "optim", "schedule", "out_dir",
                                                  "seed", "num_workers", "tensorboard", "card"}
    assert TrainConfig.from_dict(json.loads(json.dumps(doc))) == cfg == TrainConfig(**FLAT)
    (tmp_path / "c.json").write_text(json.dumps(doc))
    assert load_config(tmp_path / "c.json") == cfg
    assert len(FLAT_FIELDS) + 5 == 48  # every version-1 field has a home (5 run fields stay at the top)


def test_configs_are_validated_when_made_and_not_assigned():
    cfg = TrainConfig.from_dict(FLAT)
    with pytest.raises(ConfigError, match="replace"):
        cfg.lr = 0.1
    with pytest.raises(AttributeError):
        cfg.no_such_field  # noqa: B018
    assert cfg.replace(lr=5e-3).optim.lr == 5e-3 and cfg.optim.lr == 1e-3
    assert cfg.replace(**{"schedule.epochs": 7}).schedule.epochs == 7
    assert cfg.replace(loss={"l1": 1.0}).loss.terms == {"l1": 1.0}
    assert cfg.replace(optim=OptimConfig(lr=1e-2, batch_size=8)).optim.batch_size == 8
    for bad in (dict(lr=-1.0), dict(epochz=1), {"optim.lrr": 1.0}, {"nosection.lr": 1.0}, dict(loss={"vgg": 1.0})):
        with pytest.raises(ConfigError):
            cfg.replace(**bad)
    for bad in ({**FLAT, "version": 3}, {"out_dir": "r", "data": {"dataset": "d", "target_key": "t", "moed": "2d"}},
                {"out_dir": "r", "data": {"dataset": "d"}}, {"data": {"dataset": "d", "target_key": "t"}}):
        with pytest.raises(ConfigError):
            TrainConfig.from_dict(bad)


def test_overlay_changes_only_what_it_sets():
    cfg = TrainConfig.from_dict(FLAT)
    over = TrainOverlay(lr=2e-3, batch_size=8, loss={"mse": 1.0}, residual=False)
    new = over.apply(cfg)
    assert (new.optim.lr, new.optim.batch_size, new.loss.terms, new.model.residual) == (2e-3, 8, {"mse": 1.0}, False)
    assert new.replace(lr=1e-3, batch_size=2, loss={"l1": 1.0, "mse": 0.5}, residual=True) == cfg
    assert TrainOverlay().apply(cfg) is cfg
    with pytest.raises(TypeError):
        TrainOverlay(learning_rate=1.0)  # a misspelt option fails where it is written
    with pytest.raises(ConfigError):
        TrainOverlay(lr=0.0).apply(cfg)


def test_model_folders_saved_with_the_flat_config_still_load(tmp_path):
    """A model folder written by petspect before the sections (flat ``training`` in config.json) loads, its
    card reads, and its training configuration maps onto the sections."""
    old = json.loads((OLD_MODEL / "config.json").read_text())
    assert "lr" in old["training"] and "optim" not in old["training"]
    model = load_model(OLD_MODEL)
    assert model.card["data"]["tracer"] == "FDG" and model.card["training"]["seed"] == 3
    cfg = TrainConfig.from_dict(old["training"])
    assert (cfg.optim.lr, cfg.data.extra_keys, cfg.model.network) == (1e-3, ("ct",), "resnet")
    assert cfg.data.extra_normalizations["ct"].to_dict()["offset"] == -1000.0
    x = torch.zeros(1, 2, 8, 8)
    assert model.network(x).shape == (1, 1, 8, 8)


def test_training_leaves_the_global_rng_alone_and_is_reproducible(tiny_dataset, tmp_path):
    """The trainer draws from its own generators: the caller's torch RNG state is the same after fit, and
    two runs of one configuration give equal weights whatever the global state was."""
    kw = dict(FLAT, dataset=str(tiny_dataset), epochs=1, patience=None, tensorboard=False,
              network_kwargs={"n_blocks": 1, "norm": "none"})
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = Trainer(TrainConfig(**{**kw, "out_dir": str(tmp_path / "a")}), device="cpu").fit()
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(999)
    b = Trainer(TrainConfig(**{**kw, "out_dir": str(tmp_path / "b")}), device="cpu").fit()
    wa = torch.load(a.model_dir / "model.pt", weights_only=True)
    wb = torch.load(b.model_dir / "model.pt", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    card = json.loads((a.model_dir / "model_card.json").read_text())
    assert card["training"]["seeded_global_rng"] is False


def test_a_flat_checkpoint_config_resumes(tiny_dataset, tmp_path):
    """A checkpoint whose config was saved flat (version 1) is recognised as the same configuration."""
    kw = dict(FLAT, dataset=str(tiny_dataset), epochs=2, patience=None, tensorboard=False, out_dir=str(tmp_path / "r"),
              network_kwargs={"n_blocks": 1, "norm": "none"})
    cfg = TrainConfig(**kw)
    Trainer(cfg, device="cpu").fit()
    state = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)
    state["config"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in kw.items()}
    torch.save(state, tmp_path / "r" / "checkpoint.pt")
    shutil.rmtree(tmp_path / "r" / "model")
    assert Trainer(cfg, device="cpu").fit().model_dir.is_dir()
