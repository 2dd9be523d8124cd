"""The trainer: learning, exact resume after an interruption, early stopping, logs and the model folder."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from petspect.errors import ConfigError
from petspect.train import TrainConfig, Trainer, load_model
from petspect.train.ddp_entry import main as ddp_main


def _config(root, out, **kw) -> TrainConfig:
    args = dict(dataset=str(root), input_key="recon_d010", target_key="recon_d100", out_dir=str(out), mode="3d",
                patch_size=(8, 8, 8), channels=(4, 8), batch_size=2, epochs=2, patches_per_volume=2,
                normalization={"kind": "suv_scaling", "factor": 2000.0, "unit": "Bq/mL"}, seed=7, lr=1e-3)
    args.update(kw)
    return TrainConfig(**args)


def _weights(folder):
    return torch.load(folder / "model.pt", weights_only=True)


def test_training_lowers_the_loss(tiny_dataset, tmp_path):
    """Four epochs of a small residual CNN, 10 % dose -> full dose in 2D, lower the loss below the first epoch's."""
    cfg = _config(tiny_dataset, tmp_path / "run", epochs=4, lr=3e-3, network="resnet", channels=(8,), mode="2d",
                  patch_size=(16, 16), network_kwargs={"n_blocks": 2, "norm": "none"}, augment=None, tensorboard=False)
    hist = Trainer(cfg).fit().history
    assert hist[-1]["train_loss"] < 0.9 * hist[0]["train_loss"]
    assert all(torch.isfinite(torch.tensor(r["val_psnr"])) for r in hist)


class _Killed(RuntimeError):
    pass


def _kill_after_first(trainer, epoch, record):
    if epoch == 0:
        raise _Killed("simulated kill after the first epoch's checkpoint")


def test_resume_gives_identical_weights(tiny_dataset, tmp_path):
    """Train 2 epochs; separately train, stop after epoch 1, resume in a new Trainer: same weights, same history.
    The 2D UNet has dropout, so the run's own RNG state (saved in the checkpoint) matters too."""
    kw = dict(network_kwargs={"dropout": 0.2}, mode="2d", patch_size=(8, 8), lr_schedule="cosine", warmup_epochs=1)
    full = Trainer(_config(tiny_dataset, tmp_path / "a", **kw)).fit()
    cfg_b = _config(tiny_dataset, tmp_path / "b", **kw)
    with pytest.raises(_Killed):
        Trainer(cfg_b, callbacks=[_kill_after_first]).fit()
    assert (tmp_path / "b" / "checkpoint.pt").exists() and not (tmp_path / "b" / "model").exists()
    resumed = Trainer(cfg_b).fit()
    wa, wb = _weights(full.model_dir), _weights(resumed.model_dir)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert [r["val_loss"] for r in full.history] == [r["val_loss"] for r in resumed.history]
    rows = list(csv.DictReader((tmp_path / "b" / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert [float(r["lr"]) for r in rows] == [5e-4, 1e-3]  # warm-up at lr / 2, then the cosine starts at lr
    # a checkpoint from another configuration is refused, and so is overwriting without resume
    with pytest.raises(ConfigError):
        Trainer(_config(tiny_dataset, tmp_path / "b", **kw, lr=1e-2)).fit()
    with pytest.raises(ConfigError):
        Trainer(cfg_b).fit(resume=False)


def test_worker_processes_give_the_same_weights(tiny_dataset, tmp_path):
    """A persistent DataLoader worker draws the same patches per epoch as the main process (epochs travel
    with the indices), so two epochs with and without a worker end with equal weights."""
    kw = dict(mode="2d", patch_size=(8, 8), val_split="none", tensorboard=False)
    w = [_weights(Trainer(_config(tiny_dataset, tmp_path / f"w{n}", num_workers=n, **kw)).fit().model_dir)
         for n in (0, 1)]
    assert all(torch.equal(w[0][k], w[1][k]) for k in w[0])


def test_early_stopping_keeps_best_weights(tiny_dataset, tmp_path):
    """With an impossible min_delta no epoch after the first improves: patience 1 stops after epoch 1, and the
    model folder holds the weights of epoch 0 (the best)."""
    cfg = _config(tiny_dataset, tmp_path / "run", epochs=6, patience=1, min_delta=1e9, val_metric="psnr")
    res = Trainer(cfg).fit()
    assert res.stopped_early and len(res.history) == 2 and res.best_epoch == 0
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ckpt["finished"] and ckpt["best"]["epoch"] == 0
    final = ckpt["step"]["modules"]["generator"]
    saved = _weights(res.model_dir)
    assert all(torch.equal(saved[k], ckpt["best_state"][k]) for k in saved)
    assert any(not torch.equal(saved[k], final[k]) for k in saved)  # epoch 1 changed them
    card = json.loads((res.model_dir / "model_card.json").read_text())
    assert card["training"]["stopped_early"] and card["training"]["best_epoch"] == 0
    assert card["metrics"]["val_psnr"] == pytest.approx(res.history[0]["val_psnr"])


def test_model_folder_and_logs(tiny_dataset, tmp_path):
    cfg = _config(tiny_dataset, tmp_path / "run", epochs=1, extra_keys=("ct",), mode="2.5d", n_slices=3,
                  patch_size=(8, 8), extra_normalizations={"ct": {"kind": "affine", "offset": -1000, "scale": 1000}},
                  card={"dose_level_pct": 10, "tracer": "FDG"})
    res = Trainer(cfg).fit()
    for name in ("model.pt", "config.json", "normalization.json", "model_card.json"):
        assert (res.model_dir / name).is_file()
    card = json.loads((res.model_dir / "model_card.json").read_text())
    assert card["data"]["dose_level_pct"] == 10 and card["training"]["seed"] == 7
    assert card["petspect_version"] and card["training"]["device"] == "cpu" and card["training"]["amp"] is False
    norms = json.loads((res.model_dir / "normalization.json").read_text())
    assert [n["kind"] for n in norms["inputs"]] == ["suv_scaling", "affine"] and norms["target"]["factor"] == 2000.0
    model = load_model(res.model_dir)
    assert model.mode == "2.5d" and model.n_slices == 3 and model.network.in_channels == 6
    assert model.network.pet_channel == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    assert "val_loss" in acc.Tags()["scalars"]
    assert acc.Scalars("val_loss")[0].value == pytest.approx(res.history[0]["val_loss"], rel=1e-6)


@pytest.mark.parametrize("scheme,gan_loss", [("pix2pix", "lsgan"), ("cyclegan", "bce")])
def test_adversarial_schemes(tiny_dataset, tmp_path, scheme, gan_loss):
    """One epoch of pix2pix and of CycleGAN in 2D: finite generator, adversarial and discriminator losses."""
    cfg = _config(tiny_dataset, tmp_path / "run", epochs=1, mode="2d", patch_size=(16, 16), adversarial=scheme,
                  gan_loss=gan_loss, discriminator={"features": 4, "n_layers": 2}, tensorboard=False,
                  grad_clip_norm=1.0, adversarial_weight=1.0 if scheme == "cyclegan" else 0.01)
    res = Trainer(cfg).fit()
    rec = res.history[0]
    for key in ("train_loss", "train_loss_g_adv", "train_loss_d", "val_psnr"):
        assert torch.isfinite(torch.tensor(rec[key])), key
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    expected = {"generator", "discriminator"} if scheme == "pix2pix" else {"generator", "generator_ba", "disc_a",
                                                                           "disc_b"}
    assert set(ckpt["step"]["modules"]) == expected


def test_lesion_weighted_training(tiny_dataset, tmp_path):
    """A lesion-aware run (weights 8 on the dilated lesion map, patches centred on lesions) trains, records its
    weighting in the model's config, and its validation loss is the weighted one (differs from an unweighted run
    of the same network, which sees the same first-epoch weights only through the loss)."""
    kw = dict(epochs=1, mode="2d", patch_size=(16, 16), tensorboard=False, foreground_fraction=1.0)
    weighted = Trainer(_config(tiny_dataset, tmp_path / "w", weight_key="lesions", weight_factor=8.0,
                               weight_dilate_voxels=1, foreground_key="lesions", **kw)).fit()
    plain = Trainer(_config(tiny_dataset, tmp_path / "p", **kw)).fit()
    assert torch.isfinite(torch.tensor(weighted.history[0]["val_loss"]))
    assert weighted.history[0]["val_loss"] != pytest.approx(plain.history[0]["val_loss"], rel=1e-3)
    saved = json.loads((tmp_path / "w" / "model" / "config.json").read_text())
    text = json.dumps(saved)
    assert '"weight_key": "lesions"' in text and '"weight_factor": 8.0' in text


def test_config_validation(tiny_dataset, tmp_path):
    for bad in (dict(mode="4d"), dict(adversarial="wgan"), dict(loss={"vgg": 1.0}), dict(epochs=0),
                dict(val_metric="dice"), dict(normalization={"kind": "zscore"}), dict(augment={"shear": 1}),
                dict(lr=0.0), dict(patience=0), dict(augment=True), dict(lr_schedule="step"),
                dict(warmup_epochs=2), dict(grad_clip_norm=0.0), dict(loss={"l1": 1.0, "ssim": 0.5}),
                dict(weight_key="lesions", weight_factor=0.5), dict(weight_dilate_voxels=-1)):
        with pytest.raises(ConfigError):
            _config(tiny_dataset, tmp_path, **bad)
    assert _config(tiny_dataset, tmp_path, augment=False).augmentation() is None  # TOML has no null
    cos = _config(tiny_dataset, tmp_path, lr=1.0, epochs=5, lr_schedule="cosine")
    # 0.01 + 0.99 (1 + cos(pi e / 4)) / 2
    assert [round(cos.lr_at(e), 6) for e in range(5)] == [1.0, 0.855018, 0.505, 0.154982, 0.01]
    with pytest.raises(ConfigError, match="unknown training options"):
        TrainConfig.from_dict({**_config(tiny_dataset, tmp_path).to_dict(), "epochz": 3})
    with pytest.raises(ConfigError):
        Trainer(_config(tiny_dataset, tmp_path, adversarial="cyclegan", extra_keys=("ct",)))


def test_ddp_entry_single_process(tiny_dataset, tmp_path):
    """The torchrun entry point also runs without torchrun (one process) from a JSON config."""
    cfg = _config(tiny_dataset, tmp_path / "run", epochs=1, tensorboard=False)
    path = tmp_path / "train.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert ddp_main([str(path), "--device", "cpu"]) == 0
    assert (tmp_path / "run" / "model" / "model.pt").is_file()
    assert ddp_main([str(tmp_path / "missing.toml")]) == 2


def test_progress_bar_and_epoch_lines(tiny_dataset, tmp_path, monkeypatch, capsys):
    """With progress output on (the tests turn it off), each epoch prints a bar and one line with its
    training loss and validation figures, the same numbers as log.csv; TensorBoard logs are on by default."""
    monkeypatch.delenv("PETSPECT_NO_PROGRESS", raising=False)
    cfg = _config(tiny_dataset, tmp_path / "run", epochs=2, mode="2d", patch_size=(8, 8))
    res = Trainer(cfg).fit()
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("epoch ") and "train_loss" in ln]
    assert [ln.split()[1] for ln in lines] == ["1/2", "2/2"]
    assert f"train_loss {res.history[1]['train_loss']:.4g}" in lines[1]
    assert "val_psnr" in lines[0]
    assert cfg.tensorboard and (tmp_path / "run" / "tensorboard").is_dir()
