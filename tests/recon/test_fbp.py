"""FBP: a uniform disc reconstructs flat with small bias (scikit-image test_radon_transform style), filters,
arc correction and SSRB."""

from __future__ import annotations

import math

import pytest
import torch
from recon_toys import ParallelBeamMatrix, disc_image

from petspect.errors import InputError
from petspect.recon.fbp import FILTER_WINDOWS, arc_correct, fbp_2d, ramp_filter, ssrb

N, PX, R_MM, VALUE = 64, 2.0, 40.0, 3.0


def _disc_sinogram(n_views: int, n_bins: int = 191, tau: float = 1.0):
    """Analytic parallel projections of a disc: p(s) = 2 c sqrt(R^2 - s^2)."""
    s = (torch.arange(n_bins, dtype=torch.float64) - (n_bins - 1) / 2) * tau
    p = 2 * VALUE * torch.sqrt((R_MM ** 2 - s ** 2).clamp(min=0))
    return p.expand(n_views, n_bins).clone(), s


def _radius():
    c = (torch.arange(N) - (N - 1) / 2) * PX
    return torch.sqrt(c[:, None] ** 2 + c[None, :] ** 2)


@pytest.mark.parametrize("window", FILTER_WINDOWS)
def test_fbp_uniform_disc_flat_small_bias(window):
    """Inside 0.8 R: mean within 0.5 % of the true value and flat (CV < 1 %); outside ~0."""
    sino, s = _disc_sinogram(120)
    th = torch.arange(120, dtype=torch.float64) * math.pi / 120
    img = fbp_2d(sino, th, s, image_shape=(N, N), pixel_mm=(PX, PX), window=window,
                 cutoff=1.0 if window == "ramp" else 0.8)
    r = _radius()
    inner = img[r < 0.8 * R_MM]
    assert float(inner.mean()) == pytest.approx(VALUE, rel=5e-3)
    assert float(inner.std() / inner.mean()) < 0.01
    assert float(img[(r > 1.2 * R_MM) & (r < 60)].abs().mean()) < 0.01 * VALUE


def test_fbp_360_degrees_and_batch_of_planes():
    """A 360-degree set gives the same image as 180 degrees; planes are reconstructed independently."""
    sino, s = _disc_sinogram(60)
    th = torch.arange(60, dtype=torch.float64) * math.pi / 60
    a = fbp_2d(sino, th, s, image_shape=(N, N), pixel_mm=(PX, PX))
    th2 = torch.arange(120, dtype=torch.float64) * math.pi / 60
    b = fbp_2d(torch.cat([sino, sino.flip(-1)]), th2, s, image_shape=(N, N), pixel_mm=(PX, PX))
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    stack = fbp_2d(torch.stack([sino, 2 * sino]), th, s, image_shape=(N, N), pixel_mm=(PX, PX))
    torch.testing.assert_close(stack[1], 2 * a)


def test_fbp_inverts_the_toy_projector():
    """FBP of a sparse-matrix projection (line integrals in mm) returns the disc value."""
    op = ParallelBeamMatrix(1, 48, 96, pixel_mm=2.0)
    truth = 5.0 * disc_image(48, 15)
    sino = op(truth)[0]
    s = (torch.arange(op.n_bins, dtype=torch.float64) - (op.n_bins - 1) / 2) * 2.0
    th = torch.arange(96, dtype=torch.float64) * math.pi / 96
    img = fbp_2d(sino, th, s, image_shape=(48, 48), pixel_mm=(2.0, 2.0), window="hann", cutoff=1.0)
    c = torch.arange(48) - 23.5
    r = torch.sqrt(c[:, None] ** 2 + c[None, :] ** 2)
    assert float(img[r < 10].mean()) == pytest.approx(5.0, rel=0.02)


def test_ramp_filter_response():
    """The discrete ramp has response ~ tau * |k| / (n_pad tau^2) and no DC gap larger than 1/(4 tau) * tau;
    windows lower it and the cut-off zeroes frequencies above it."""
    resp, n_pad = ramp_filter(100, 2.0)
    assert n_pad == 256
    nu = torch.arange(resp.numel(), dtype=torch.float64) / (n_pad * 2.0)
    mid = slice(10, 100)
    torch.testing.assert_close(resp[mid], nu[mid], rtol=0.02, atol=1e-4)
    assert 0 < float(resp[0]) < 0.1 * float(resp[-1])
    hann, _ = ramp_filter(100, 2.0, window="hann", cutoff=0.5)
    assert float(hann[resp.numel() // 2 + 2:].abs().max()) == 0.0
    assert bool((hann <= resp + 1e-12).all())
    with pytest.raises(InputError):
        ramp_filter(100, 2.0, window="butterworth")
    with pytest.raises(InputError):
        ramp_filter(100, 2.0, cutoff=0.0)


def test_arc_correct_linear_profile():
    """A profile linear in s is resampled exactly onto a new grid inside the range, 0 outside."""
    src = 300 * torch.sin(math.pi * (torch.arange(40, dtype=torch.float64) - 20) / 400)
    prof = 2 * src + 1
    dst = torch.linspace(-40, 40, 33, dtype=torch.float64)
    out = arc_correct(prof[None], src, dst)[0]
    torch.testing.assert_close(out, 2 * dst + 1)
    assert float(arc_correct(prof, src, torch.tensor([1000.0], dtype=torch.float64))[0]) == 0.0


def test_ssrb_averages_planes_at_mean_z():
    """Two rings of spacing 4 mm: planes (0,0), (0,1), (1,0), (1,1) go to z = -2, 0, 0, +2 mm."""
    za = torch.tensor([-2.0, -2.0, 2.0, 2.0])
    zb = torch.tensor([-2.0, 2.0, -2.0, 2.0])
    sino = torch.arange(4, dtype=torch.float64)[:, None, None] * torch.ones(4, 3, 5, dtype=torch.float64)
    out = ssrb(sino, (za + zb) / 2, torch.tensor([-2.0, 0.0, 2.0]))
    assert out.shape == (3, 3, 5)
    assert torch.equal(out[:, 0, 0], torch.tensor([0.0, 1.5, 3.0], dtype=torch.float64))
    with pytest.raises(InputError):
        ssrb(sino, torch.tensor([0.0, 0.0, 0.0, 10.0]), torch.tensor([-2.0, 0.0, 2.0]))


def test_bad_geometry_raises():
    sino, s = _disc_sinogram(10, 31)
    th = torch.arange(10, dtype=torch.float64) * math.pi / 10
    with pytest.raises(InputError):
        fbp_2d(sino, th[:5], s, image_shape=(8, 8), pixel_mm=(1.0, 1.0))
    with pytest.raises(InputError):
        fbp_2d(sino, th, s ** 3, image_shape=(8, 8), pixel_mm=(1.0, 1.0))
