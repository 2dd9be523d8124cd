"""The TTA uncertainty map: mean and spread over the 8 in-plane flips and quarter turns."""

from __future__ import annotations

import torch

from petspect.tasks.uncertainty import _fwd, _inv, _transforms, sd_path


def test_transforms_are_inverted_exactly():
    x = torch.arange(2 * 5 * 5, dtype=torch.float32).reshape(2, 5, 5)
    assert len(_transforms(x.shape)) == 8 and len(_transforms((2, 5, 6))) == 4
    for k, f in _transforms(x.shape):
        assert torch.equal(_inv(_fwd(x, k, f), k, f), x)
    assert len({tuple(_fwd(x, k, f).flatten().tolist()) for k, f in _transforms(x.shape)}) == 8


def test_sd_path_names():
    assert sd_path("a/b.nii.gz").name == "b_sd.nii.gz" and sd_path("b.nii").name == "b_sd.nii"
    assert sd_path("out/series").name == "series_sd"


def test_uncertainty_of_a_tiny_model(tiny_cohort, tiny_model):
    from petspect.io import load
    from petspect.tasks.denoise import denoise_volume
    from petspect.tasks.uncertainty import denoise_with_uncertainty
    from petspect.train import load_model

    model = load_model(tiny_model)
    low = load(tiny_cohort / "sub-003" / "recon_d010_osem_ac.nii.gz")
    mean, sd = denoise_with_uncertainty(model, low)
    outs = [_inv(denoise_volume(model, low.with_data(_fwd(low.data, k, f).contiguous())).data.double(), k, f)
            for k, f in _transforms(low.shape)]
    stack = torch.stack(outs)
    assert torch.allclose(mean.data.double(), stack.mean(0), rtol=1e-5, atol=1e-3)
    assert torch.allclose(sd.data.double(), stack.std(0), rtol=1e-5, atol=1e-3)
    assert float(sd.data.min()) >= 0 and float(sd.data.max()) > 0 and mean.same_grid(low)
    m2, s2 = denoise_with_uncertainty(model, low, preserve_total=True)
    ratio = float(low.data.double().sum() / mean.data.double().sum())
    assert torch.allclose(s2.data.double(), sd.data.double() * ratio, rtol=1e-4, atol=1e-3)
