"""The AC networks: input normalisation, the U-Net's normalisation, model folders (old and new), mirroring."""

from __future__ import annotations

import json

import pytest
import torch

from petspect.ac.networks import (UTE_SCALE_PER_MS, _mirror, build_unet, load_model, model_inputs, network_inputs,
                                  predict_slices, save_model, train_translation)
from petspect.errors import FormatError, InputError


def test_mr_inputs_scale_t1_and_ute():
    t1 = torch.linspace(0, 2, 2 * 8 * 8).reshape(2, 8, 8)
    ute = torch.full((2, 8, 8), 0.02)
    ute[0, 0, 0], ute[0, 0, 1] = 0.9, 3.0  # skull-like, and a value past the clip
    x = network_inputs("mr_sct", t1=t1, ute_r2_per_ms=ute)
    assert x.shape == (2, 2, 8, 8)
    assert float(torch.quantile(x[:, 0].flatten(), 0.99)) == pytest.approx(1.0, abs=1e-5)
    assert float(x[1, 1, 3, 3]) == pytest.approx(0.02 / UTE_SCALE_PER_MS)  # soft tissue 0.2
    assert float(x[0, 1, 0, 0]) == pytest.approx(9.0) and float(x[0, 1, 0, 1]) == 10.0  # clipped at 10
    nac = torch.rand(3, 8, 8)
    assert network_inputs("nac_sct", nac=nac).shape == (3, 1, 8, 8)
    with pytest.raises(InputError):
        network_inputs("mr_sct", t1=t1)  # no UTE map
    with pytest.raises(InputError):
        network_inputs("mr_sct", t1=t1, ute_r2_per_ms=ute[:1])
    with pytest.raises(InputError):
        network_inputs("tof_acf", nac=nac)


def test_unet_batch_norm_by_default_and_bad_arguments():
    net = build_unet(2)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in build_unet(2, norm="instance").modules())
    with pytest.raises(InputError):
        build_unet(2, norm="group")
    with pytest.raises(InputError):
        build_unet(2, channels=(8, 16, 32), strides=(2,))


def test_mirror_flips_inputs_and_targets_alike():
    x = torch.arange(64.0).reshape(4, 1, 4, 4)
    y, w = x * 2, torch.ones_like(x)
    mx, my, mw = _mirror((x, y, w), torch.Generator().manual_seed(1))
    flipped = (mx != x).flatten(1).any(1)
    assert 0 < int(flipped.sum()) < 4  # a random part of the batch (seeded)
    assert torch.equal(my, 2 * mx) and torch.equal(mw, w)
    assert torch.equal(mx[flipped], x[flipped].flip(-1))


def test_train_save_load_round_trip_and_version_1_models(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 2, 12, 12, generator=g)
    y = (x[:, :1] - 0.5)
    model, info = train_translation("mr_sct", x[:4], y[:4], x[4:], y[4:], target_scale=1000.0, epochs=2, seed=3,
                                    channels=(4, 8), batch_size=2, input_norm={"ute_scale_per_ms": 0.1})
    assert info["steps"] == 4 and info["best_epoch"] in (0, 1)
    folder = save_model(model, tmp_path / "m")
    meta = json.loads((folder / "model.json").read_text())
    assert meta["version"] == 2 and meta["net_args"]["norm"] == "batch" and meta["input_norm"]["ute_scale_per_ms"] == 0.1
    again = load_model(folder)
    assert torch.allclose(predict_slices(again, x[4:]), predict_slices(model, x[4:]), atol=1e-5)
    # a version-1 folder (no "norm" recorded) was an instance-norm U-Net and still loads as one
    old = build_unet(2, channels=(4, 8), strides=(2,), norm="instance")
    v1 = tmp_path / "v1"
    v1.mkdir()
    torch.save(old.state_dict(), v1 / "model.pt")
    (v1 / "model.json").write_text(json.dumps({"format": "petspect-ac-model", "version": 1, "task": "nac_sct",
                                               "in_channels": 2, "net_args": {"in_channels": 2, "channels": [4, 8],
                                                                             "strides": [2]},
                                               "target_scale": 1000.0}))
    m1 = load_model(v1)
    assert m1.net is not None and m1.input_norm == {}
    # its inputs: the UTE map unscaled, clipped at 1.5/ms (as version 1 trained); a version-2 model: scaled
    t1, ute = torch.rand(2, 8, 8) + 0.5, torch.full((2, 8, 8), 0.5)
    ute[0, 0, 0] = 2.0
    m1.task = "mr_sct"
    assert model_inputs(m1, t1=t1, ute_r2_per_ms=ute)[0, 1, 0, :2].tolist() == pytest.approx([1.5, 0.5])
    assert model_inputs(model, t1=t1, ute_r2_per_ms=ute)[0, 1, 0, :2].tolist() == pytest.approx([10.0, 5.0])
    # a batch-norm state dict does not fit an instance-norm network: refused, naming the file
    torch.save(model.net.state_dict(), v1 / "model.pt")
    with pytest.raises(FormatError):
        load_model(v1)
