"""Segmentation networks: shape table, argument checks, input scaling, patches, model folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petspect.errors import FormatError, InputError
from petspect.segmentation.networks import (SUV_SCALE, SegNetSpec, Segmenter, build_network, input_channels,
                                            load_segmenter, predict_probability, save_segmenter)
from petspect.segmentation.train import extract_patches, sample_patch_centres


@pytest.mark.parametrize("spec", [
    SegNetSpec(filters=(4, 8, 16), z_strides=(1, 2), patch_zyx=(8, 16, 16)),
    SegNetSpec(filters=(4, 8, 16, 32), z_strides=(1, 1, 2), patch_zyx=(4, 24, 24), in_channels=1),
    SegNetSpec(kind="segresnet", filters=(8,), patch_zyx=(8, 16, 16)),
])
def test_shape_table(spec):
    torch.manual_seed(0)
    net = build_network(spec).eval()
    x = torch.randn(2, spec.in_channels, *spec.patch_zyx)
    with torch.no_grad():
        assert net(x).shape == (2, 2, *spec.patch_zyx)


def test_spec_refusals():
    with pytest.raises(InputError, match="divisible"):
        SegNetSpec(filters=(4, 8, 16), z_strides=(2, 2), patch_zyx=(6, 16, 16))
    with pytest.raises(InputError):
        SegNetSpec(in_channels=3)
    with pytest.raises(InputError, match="multiple of 8"):
        SegNetSpec(kind="segresnet", filters=(4,), patch_zyx=(8, 16, 16))
    with pytest.raises(InputError, match="3 levels"):
        SegNetSpec(filters=(4, 8), z_strides=(1,), patch_zyx=(8, 16, 16))


def test_input_channels_scale_and_checks():
    suv = np.full((2, 3, 4), 10.0)
    ct = np.full((2, 3, 4), 500.0)
    x = input_channels(suv, ct)
    assert x.shape == (2, 2, 3, 4)
    assert torch.allclose(x[0], torch.full((2, 3, 4), 10.0 / SUV_SCALE)) and torch.allclose(x[1], torch.tensor(0.5))
    with pytest.raises(InputError, match="CT"):
        input_channels(suv, None)
    with pytest.raises(InputError):
        input_channels(suv, ct[:1])


def test_lesion_weighted_centres_and_padded_patches():
    rng = np.random.default_rng(0)
    les = np.zeros((6, 20, 20), np.int16)
    les[2:4, 5:7, 5:7] = 1
    body = np.ones(les.shape, bool)
    c = sample_patch_centres(les, body, 30, 2 / 3, rng)
    on = les[tuple(c.T)] > 0
    assert on[:20].all() and len(c) == 30
    x = torch.arange(6 * 20 * 20, dtype=torch.float32).reshape(1, 6, 20, 20) + 5.0
    y = torch.from_numpy(les.astype(np.int64))
    px, py = extract_patches(x, y, np.array([[0, 0, 0], [3, 10, 10]]), (8, 8, 8))
    assert px.shape == (2, 1, 8, 8, 8) and py.shape == (2, 1, 8, 8, 8)
    assert float(px[0].min()) == 5.0  # padded with the channel's minimum, not zeros
    assert px[1, 0, 4, 4, 4] == x[0, 3, 10, 10]  # the centre voxel sits at patch // 2


def test_model_folder_round_trip(tmp_path):
    spec = SegNetSpec(filters=(4, 8, 16), z_strides=(1, 2), patch_zyx=(8, 16, 16))
    torch.manual_seed(1)
    seg = Segmenter(build_network(spec).eval(), spec, "dynunet", record={"best_epoch": 3})
    path = save_segmenter(tmp_path / "m", seg)
    back = load_segmenter(path)
    x = torch.randn(2, 10, 20, 18)
    assert torch.allclose(predict_probability(seg.net, x, spec.patch_zyx),
                          predict_probability(back.net, x, spec.patch_zyx))
    assert back.name == "dynunet" and back.record["best_epoch"] == 3
    (tmp_path / "bad").mkdir()
    with pytest.raises(FormatError):
        load_segmenter(tmp_path / "bad")


@pytest.mark.parametrize("weights", [b"", b"garbage\n"])
def test_load_segmenter_refuses_damaged_weights_with_a_format_error(tmp_path, weights):
    """Empty or garbage model.pt raised EOFError/UnpicklingError (a traceback in `petspect segment --model`)."""
    spec = SegNetSpec(filters=(4, 8, 16), z_strides=(1, 2), patch_zyx=(8, 16, 16))
    folder = save_segmenter(tmp_path / "m", Segmenter(build_network(spec).eval(), spec, "dynunet"))
    (folder / "model.pt").write_bytes(weights)
    with pytest.raises(FormatError, match="not a PyTorch weights file"):
        load_segmenter(folder)
