"""learned_recon methods at small size: exact invariants (untrained unrolled network == OSEM, Anscombe variance,
view interpolation, plane layouts), gradients through the system model, and refusals of unsupported inputs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from petspect.errors import InputError
from petspect.learned_recon.consistency import data_consistency
from petspect.learned_recon.dip import DipSettings, dip_reconstruct
from petspect.learned_recon.direct import DirectSettings, corrected_sinogram, reconstruct_direct, train_direct
from petspect.learned_recon.nets import DeepPetNet, UNet2d
from petspect.learned_recon.projection_denoise import (ProjectionDenoiser, anscombe, denoise_projections, from_planes,
                                                       inverse_anscombe, to_planes)
from petspect.learned_recon.sparse_view import interpolate_views, sparse_acquisition
from petspect.learned_recon.unrolled import EmOperators, UnrolledEM, UnrolledSettings, nrmse_pct, train_unrolled
from petspect.recon.em import osem
from petspect.systems.records import Modality

from lr_cases import make_case


def test_anscombe_stabilises_poisson_variance_and_inverts():
    """Var[2 sqrt(Y + 3/8)] -> 1 for Poisson Y with mean >~ 10 (Anscombe 1948); the inverse a^2/4 - 1/8 maps the
    *expected* transformed value back to the mean (E[A(Y)] ~ 2 sqrt(mean + 1/8)), within 1 % at mean 20; applied to
    one noiseless count it adds 1/4."""
    gen = torch.Generator().manual_seed(0)
    y = torch.poisson(torch.full((200_000,), 20.0), generator=gen)
    a = anscombe(y)
    assert float(a.var()) == pytest.approx(1.0, abs=0.03)
    assert float(inverse_anscombe(anscombe(torch.tensor([0.0, 5.0, 100.0])))[2]) == pytest.approx(100.0 + 0.25, abs=1e-3)
    assert float(inverse_anscombe(a.mean())) == pytest.approx(20.0, rel=0.01)


@pytest.mark.parametrize("shape,modality", [((3, 8, 10), Modality.PET), ((3, 8, 10, 5), Modality.PET),
                                            ((8, 3, 10), Modality.SPECT)])
def test_plane_layout_round_trips(shape, modality):
    x = torch.arange(torch.tensor(shape).prod().item(), dtype=torch.float32).reshape(shape)
    planes = to_planes(x, modality)
    assert planes.ndim == 4 and planes.shape[1] == 1 and planes.shape[2] == 8
    torch.testing.assert_close(from_planes(planes, x, modality), x)


def test_view_interpolation_is_exact_for_views_linear_in_angle():
    """Views that vary linearly between acquired angles are reproduced exactly (between the last acquired view
    and the wrap to view 0 the interpolation runs back to view 0, as the orbit is circular)."""
    n, every = 16, 4
    full = torch.arange(n, dtype=torch.float32)[:, None, None].expand(n, 2, 3).clone()
    interp = interpolate_views(full[::every], every)
    torch.testing.assert_close(interp[: n - every + 1], full[: n - every + 1])
    assert float(interp[-1, 0, 0]) == pytest.approx(12 * 0.25)  # 3/4 of the way from view 12 back to view 0


def test_sparse_acquisition_keeps_one_view_in_four_with_its_geometry():
    from petspect.simulate.acquisition import simulate_acquisition
    from petspect.volume import Volume

    act = Volume.centered(torch.ones(2, 16, 16) * 1e4, (4.0, 4.0, 4.0), unit="Bq/mL", modality="NM")
    data = simulate_acquisition(act, "spect-lehr", n_views=16, radius_mm=150.0, scan_s=320.0, seed=0)
    sp = sparse_acquisition(data, 4)
    assert sp.prompts.shape[0] == 4 and list(sp.system.angles_deg) == [data.system.angles_deg[i] for i in (0, 4, 8, 12)]
    torch.testing.assert_close(sp.prompts, data.prompts[::4])
    with pytest.raises(InputError, match="multiple"):
        sparse_acquisition(data, 3)


def test_untrained_unrolled_network_is_osem(small_case):
    """The update networks start as the identity, so the untrained unrolled network is n_blocks OSEM iterations
    with n_subsets subsets through the same system model (recon.em.osem), to float32 rounding."""
    model = UnrolledEM(n_blocks=3, n_subsets=4, widths=(4, 8))
    with torch.no_grad():
        x = model(EmOperators.of(small_case, 4))
    ref = osem(small_case.system.operator, small_case.data.prompts, additive=small_case.data.additive, n_iter=3,
               n_subsets=4, progress=False)
    torch.testing.assert_close(x, ref, rtol=2e-4, atol=1e-3 * float(ref.max()))


def test_unrolled_gradients_reach_every_block_and_training_keeps_the_best_validation_epoch(small_case):
    model = UnrolledEM(n_blocks=2, n_subsets=2, widths=(4, 8))
    ops = EmOperators.of(small_case, 2)
    loss = ((model(ops) - small_case.truth.data) ** 2).mean()
    loss.backward()
    for net in model.nets:
        assert float(net.head.weight.grad.abs().sum()) > 0  # through the projector's autograd bridge
    val = make_case(seed=1)
    trained, hist = train_unrolled([small_case], [val], UnrolledSettings(n_blocks=2, n_subsets=2, widths=(4, 8),
                                                                          epochs=2))
    assert [h["epoch"] for h in hist] == [0, 1, 2]
    best = min(h["val_nrmse_pct"] for h in hist)
    with torch.no_grad():
        got = nrmse_pct(trained(EmOperators.of(val, 2)), val.truth.data)
    assert got == pytest.approx(best, rel=1e-4)


def test_dip_fits_the_data_and_stays_in_the_support(small_case):
    imgs = dip_reconstruct(small_case, DipSettings(widths=(4, 8), checkpoints=(2, 30), warm_iterations=0,
                                                   n_subsets=2, lr=1e-2))
    assert sorted(imgs) == [2, 30]
    for img in imgs.values():
        assert bool((img >= 0).all()) and float(img[~small_case.support].abs().sum()) == 0.0
    d = {k: data_consistency(v, small_case.data, system=small_case.system).deviance for k, v in imgs.items()}
    assert d[30] < d[2]  # the fit through the system model reduces the Poisson deviance


def test_direct_network_shapes_and_refusals(small_case):
    x, m = corrected_sinogram(small_case)
    assert x.shape == (1, 1, *small_case.data.prompts.shape[1:]) and m > 0
    model, hist = train_direct([small_case], [make_case(seed=2)], DirectSettings(widths=(4, 4, 4), epochs=1,
                                                                                  batch_size=1))
    img = reconstruct_direct(model, small_case)
    assert img.shape == small_case.truth.shape and bool((img >= 0).all())
    with pytest.raises(InputError):
        DeepPetNet((20, 20))
    tof_like = dataclasses.replace(small_case, data=dataclasses.replace(
        small_case.data, prompts=small_case.data.prompts[..., None].repeat(1, 1, 1, 2), additive=None))
    with pytest.raises(InputError, match="non-TOF"):
        corrected_sinogram(tof_like)


def test_unet_pads_any_size_and_residual_starts_as_identity():
    net = UNet2d(1, 1, (4, 8, 8), residual=True)
    x = torch.rand(2, 1, 13, 22)
    torch.testing.assert_close(net(x), x)
    with pytest.raises(InputError):
        net(torch.rand(2, 3, 8, 8))


def test_projection_denoiser_refuses_another_count_fraction(small_case):
    model = ProjectionDenoiser((4, 8), count_fraction=0.1)
    with pytest.raises(InputError, match="count fraction"):
        denoise_projections(model, small_case)
    same = ProjectionDenoiser((4, 8), count_fraction=float(small_case.data.calibration.count_fraction))
    out = denoise_projections(same, small_case)  # untrained residual net: the identity, + 1/4 from the inverse
    torch.testing.assert_close(out.prompts, small_case.data.prompts + 0.25, atol=1e-3, rtol=1e-5)


def test_cho_metrics_detects_a_visible_lesion_and_refuses_too_few_rois():
    """A 3-pixel Gaussian blob of amplitude 2 on unit white noise is detectable (d' well above 0); the same
    noise without the blob gives d' near the small-sample floor; fewer ROIs than 2 x channels give no value."""
    import numpy as np

    from petspect.learned_recon.study_cho import CHO_CHANNELS, cho_metrics, roi_size

    size, _ = roi_size(6.0)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] - size // 2
    blob = 2.0 * np.exp(-(yy ** 2 + xx ** 2) / (2 * 1.5 ** 2))
    present = [rng.normal(size=(8, size, size)) + blob for _ in range(4)]
    absent = [rng.normal(size=(8, size, size)) for _ in range(4)]
    flat = [rng.normal(size=(8, size, size)) for _ in range(4)]
    res = cho_metrics({"good": (present, absent), "none": (flat, absent)}, 6.0, n_boot=200, seed=0)
    assert res["by_method"]["good"]["cho_dprime"] > 3 * res["by_method"]["none"]["cho_dprime"]
    few = cho_metrics({"m": ([p[:1] for p in present], [a[:1] for a in absent])}, 6.0, n_boot=200, seed=0)
    assert few["by_method"] == {} and str(2 * CHO_CHANNELS) in few["note"]
