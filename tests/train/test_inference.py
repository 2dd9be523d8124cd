"""Sliding-window inference: exact stitching, normalisation round trip, 2D/2.5D/3D layouts."""

from __future__ import annotations

import pytest
import torch

from petspect.errors import InputError
from petspect.nn import build_network
from petspect.train import Log1p, SuvScaling, TrainedModel, load_model, predict_volume, save_model
from petspect.train.model_io import build_from_spec
from petspect.volume import Volume


def _identity_model(mode, n_mod=1, n_slices=1, norm=None):
    """The residual denoiser starts as the identity on its PET channel: inference must return the input."""
    dims = 3 if mode == "3d" else 2
    spec = {"name": "resnet", "spatial_dims": dims, "in_channels": n_mod * n_slices, "out_channels": 1,
            "channels": [4], "residual": True, "nonnegative": False, "pet_channel": n_slices // 2,
            "kwargs": {"n_blocks": 1}}
    norm = norm or SuvScaling(1000.0)
    data = {"mode": mode, "n_slices": n_slices, "input_key": "low", "extra_keys": ["ct"][: n_mod - 1],
            "target_key": "full", "patch_size": [8, 8, 8] if dims == 3 else [8, 8]}
    return TrainedModel(build_from_spec(spec).eval(), {"network": spec, "data": data}, [norm] * n_mod, norm), spec, data


@pytest.mark.parametrize("mode,n_mod,n_slices", [("3d", 1, 1), ("3d", 2, 1), ("2d", 2, 1), ("2.5d", 2, 5)])
def test_identity_network_reproduces_input(mode, n_mod, n_slices, device):
    """Overlapping Gaussian-weighted windows of an identity network stitch back to the input exactly (up to
    float32 round-off), through the normalisation and its inverse, on a volume that is not a multiple of the roi."""
    model, _, _ = _identity_model(mode, n_mod, n_slices, Log1p(500.0))
    model.to(device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n_mod, 9, 13, 11, generator=g) * 5000.0
    y = predict_volume(model, x, overlap=0.25, device=device)
    assert y.shape == (9, 13, 11) and y.device == x.device
    torch.testing.assert_close(y, x[0], rtol=1e-5, atol=1e-2)


def test_volume_in_volume_out(tmp_path):
    model, spec, data = _identity_model("3d")
    save_model(tmp_path / "m", model.network, network_spec=spec, data=data, input_normalizations=[SuvScaling(1000.0)],
               target_normalization=SuvScaling(1000.0), training={}, card={"note": "test"})
    loaded = load_model(tmp_path / "m")
    vol = Volume.centered(torch.rand(9, 10, 11) * 100, (2.0, 3.0, 3.0), unit="Bq/mL", modality="PT")
    out = predict_volume(loaded, vol)
    assert isinstance(out, Volume) and out.spacing_mm == vol.spacing_mm and out.unit == "Bq/mL"
    torch.testing.assert_close(out.data, vol.data, rtol=1e-5, atol=1e-3)
    save_model(tmp_path / "suv", model.network, network_spec=spec, data=data,
               input_normalizations=[SuvScaling(1.0, unit="SUVbw")], target_normalization=SuvScaling(1.0, unit="SUVbw"),
               training={}, card={})
    with pytest.raises(InputError, match="SUVbw"):  # a model trained on SUV is not fed Bq/mL
        predict_volume(load_model(tmp_path / "suv"), vol)


def test_bare_network_and_errors():
    net = build_network("unet", spatial_dims=2, in_channels=1, channels=(4, 8)).eval()
    x = torch.rand(6, 16, 16)
    y = predict_volume(net, x, mode="2d", roi_size=(8, 8))
    assert y.shape == x.shape
    with pytest.raises(InputError):
        predict_volume(net, x)  # no mode for a bare network
    model, _, _ = _identity_model("3d", n_mod=2)
    with pytest.raises(InputError, match="modalities"):
        predict_volume(model, x)
    with pytest.raises(InputError):
        predict_volume(model, torch.rand(2, 6, 16, 16), roi_size=(8, 8))
    with pytest.raises(InputError):
        predict_volume(model, torch.rand(2, 6, 16, 16), overlap=1.0)


def test_test_time_augmentation_averages_the_symmetries():
    """tta=True equals the mean of the network over the 8 in-plane flips/turns of a square window, each turned
    back (written out by hand with one asymmetric 3 x 3 convolution), 4 flips for a non-square window, and
    leaves an equivariant network (a symmetric kernel) unchanged."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.arange(9.0).reshape(1, 1, 3, 3))
    x = torch.rand(1, 12, 12)
    plain = predict_volume(conv, x, mode="2d", roi_size=(12, 12), overlap=0.0)
    tta = predict_volume(conv, x, mode="2d", roi_size=(12, 12), overlap=0.0, tta=True)
    img = x[:, None]
    by_hand = torch.zeros_like(img)
    for k in range(4):
        for flip in (False, True):
            b = torch.rot90(img.flip(-1) if flip else img, k, (-2, -1))
            o = torch.rot90(conv(b), -k, (-2, -1)).detach()
            by_hand += o.flip(-1) if flip else o
    torch.testing.assert_close(tta, (by_hand / 8)[:, 0])
    assert not torch.allclose(tta, plain)
    rect = torch.rand(1, 8, 12)
    tta_rect = predict_volume(conv, rect, mode="2d", roi_size=(8, 12), overlap=0.0, tta=True)
    img = rect[:, None]
    four = torch.zeros_like(img)
    for k in (0, 2):
        for flip in (False, True):
            o = torch.rot90(conv(torch.rot90(img.flip(-1) if flip else img, k, (-2, -1))), -k, (-2, -1)).detach()
            four += o.flip(-1) if flip else o
    torch.testing.assert_close(tta_rect, (four / 4)[:, 0])
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])[None, None])
    torch.testing.assert_close(predict_volume(conv, x, mode="2d", roi_size=(12, 12), overlap=0.0, tta=True),
                               predict_volume(conv, x, mode="2d", roi_size=(12, 12), overlap=0.0))
