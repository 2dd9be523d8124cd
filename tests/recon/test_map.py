"""Priors (finite-difference gradients, weights) and MAP algorithms (beta = 0 is MLEM, smoothing, zeros)."""

from __future__ import annotations

import math

import pytest
import torch
from recon_toys import ParallelBeamMatrix, disc_image

from petspect.errors import InputError
from petspect.operators.base import ElementwiseMultiply
from petspect.recon.em import mlem, osem
from petspect.recon.iterate import History
from petspect.recon.map import bsrem, osl_osem
from petspect.recon.objectives import PoissonLogLikelihood
from petspect.recon.priors import QuadraticPrior, RelativeDifferencePrior, make_prior, neighbourhood


@pytest.fixture(scope="module")
def geom():
    return ParallelBeamMatrix(1, 32, 32, pixel_mm=4.0)


def _noisy(op, x, seed=0):
    return torch.poisson(op(x), generator=torch.Generator().manual_seed(seed))


def test_neighbourhood_weights_inverse_distance():
    """26-neighbourhood: 13 pairs per voxel counted once; weights 1, 1/sqrt2, 1/sqrt3 for cubic voxels."""
    nb = neighbourhood(3)
    assert len(nb) == 13
    assert sorted({round(w, 6) for _, w in nb}) == sorted({1.0, round(1 / math.sqrt(2), 6), round(1 / math.sqrt(3), 6)})
    nb2 = neighbourhood(2, (2.0, 1.0))
    w = dict(nb2)
    assert w[(0, 1)] == pytest.approx(1.0) and w[(1, 0)] == pytest.approx(0.5)
    assert w[(1, 1)] == pytest.approx(1 / math.sqrt(5))
    with pytest.raises(InputError):
        neighbourhood(4)


@pytest.mark.parametrize("prior", [QuadraticPrior(), RelativeDifferencePrior(2.0),
                                   RelativeDifferencePrior(0.0, spacing_mm=(3.0, 2.0, 2.0))],
                         ids=["quadratic", "rdp-g2", "rdp-g0-aniso"])
def test_prior_gradient_matches_finite_differences(prior):
    """Central differences in float64 on a random positive 3D image (parallelproj-style check)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 5, 6, generator=g, dtype=torch.float64) + 0.1
    if prior.spacing_mm is None and isinstance(prior, QuadraticPrior):
        x = x[0]  # also cover 2D
    grad = prior.gradient(x)
    h = 1e-6
    idx = torch.randperm(x.numel(), generator=g)[:25]
    for i in idx.tolist():
        e = torch.zeros(x.numel(), dtype=torch.float64)
        e[i] = h
        e = e.reshape(x.shape)
        fd = (prior.value(x + e) - prior.value(x - e)) / (2 * h)
        assert float(grad.reshape(-1)[i]) == pytest.approx(float(fd), rel=1e-6, abs=1e-8)


@pytest.mark.parametrize("prior", [QuadraticPrior(), RelativeDifferencePrior(2.0), RelativeDifferencePrior(0.5)],
                         ids=["quadratic", "rdp-g2", "rdp-g05"])
def test_prior_curvature_matches_finite_differences_of_gradient(prior):
    """Hessian diagonal d2R/dx_j^2 from central differences of the analytic gradient (float64)."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 4, 5, generator=g, dtype=torch.float64) + 0.2
    curv = prior.curvature(x)
    assert bool((curv >= 0).all())
    h = 1e-6
    for i in torch.randperm(x.numel(), generator=g)[:15].tolist():
        e = torch.zeros(x.numel(), dtype=torch.float64)
        e[i] = h
        e = e.reshape(x.shape)
        fd = (prior.gradient(x + e).reshape(-1)[i] - prior.gradient(x - e).reshape(-1)[i]) / (2 * h)
        assert float(curv.reshape(-1)[i]) == pytest.approx(float(fd), rel=1e-5, abs=1e-7)


def test_bsrem_penalised_objective_rises_for_strong_prior(geom):
    """The curvature-scaled preconditioner keeps BSREM's steps stable for a strong prior: the penalised
    log-likelihood rises every iteration with one subset (with the plain EM preconditioner x / s it drops from
    7.1e6 to 2.0e6 by the third iteration on these data)."""
    y = _noisy(geom, 20.0 * disc_image(32, 12), 7)
    hist = History()
    bsrem(geom, y, RelativeDifferencePrior(2.0), 500.0, n_iter=6, n_subsets=1, callback=hist, compute_objective=True)
    obj = hist.objective
    assert all(b > a for a, b in zip(obj[:-1], obj[1:]))


def test_prior_values_known_cases():
    """Constant image: R = 0 and grad = 0; a step of height d between two voxels: quadratic d^2/2,
    RDP d^2 / (d (1 + gamma)) at level 0 (Nuyts 2002 definition)."""
    for p in (QuadraticPrior(), RelativeDifferencePrior(2.0)):
        c = torch.full((3, 4, 4), 7.0, dtype=torch.float64)
        assert float(p.value(c)) == 0.0 and float(p.gradient(c).abs().max()) == 0.0
    two = torch.tensor([[0.0, 3.0]], dtype=torch.float64)
    assert float(QuadraticPrior().value(two)) == pytest.approx(4.5)
    assert float(RelativeDifferencePrior(2.0, epsilon=1e-12).value(two)) == pytest.approx(9.0 / 9.0)
    z = torch.zeros(2, 3, 3, dtype=torch.float64)
    rdp = RelativeDifferencePrior(2.0)
    assert bool(torch.isfinite(rdp.gradient(z)).all()) and float(rdp.value(z)) == 0.0
    assert isinstance(make_prior("rdp"), RelativeDifferencePrior)
    with pytest.raises(InputError):
        make_prior("tv")


def test_map_beta_zero_equals_mlem(geom):
    """With beta = 0: OSL is OSEM exactly; BSREM with one subset and relaxation 1 is MLEM."""
    truth = 30.0 * disc_image(32, 10) + 30.0 * disc_image(32, 4)
    y = _noisy(geom, truth)
    b = torch.full_like(y, 0.3)
    ref = mlem(geom, y, additive=b, n_iter=5)
    x_osl = osl_osem(geom, y, RelativeDifferencePrior(), 0.0, additive=b, n_iter=5, n_subsets=1)
    assert torch.equal(x_osl, ref)
    x_bs = bsrem(geom, y, RelativeDifferencePrior(), 0.0, additive=b, n_iter=5, n_subsets=1,
                 relaxation_decay=0.0, floor_fraction=0.0)
    torch.testing.assert_close(x_bs, ref, rtol=1e-9, atol=1e-9 * float(ref.max()))
    x_os4 = osl_osem(geom, y, QuadraticPrior(), 0.0, n_iter=2, n_subsets=4)
    assert torch.equal(x_os4, osem(geom, y, n_iter=2, n_subsets=4))


@pytest.mark.parametrize("algo", ["bsrem", "osl"])
@pytest.mark.parametrize("prior", [RelativeDifferencePrior(2.0), QuadraticPrior()], ids=["rdp", "quadratic"])
def test_map_reduces_noise_and_increases_penalised_objective(geom, algo, prior):
    """A penalty lowers the background noise relative to OSEM at the same iterations, and BSREM's
    penalised objective rises overall."""
    truth = 20.0 * disc_image(32, 12)
    y = _noisy(geom, truth, 4)
    beta = 2.0 if isinstance(prior, RelativeDifferencePrior) else 0.1
    hist = History()
    fn = bsrem if algo == "bsrem" else osl_osem
    x = fn(geom, y, prior, beta, n_iter=6, n_subsets=4, callback=hist, compute_objective=True)
    x_ml = osem(geom, y, n_iter=6, n_subsets=4)
    inner = disc_image(32, 9)[0] > 0.999
    cv = float(x[0][inner].std() / x[0][inner].mean())
    cv_ml = float(x_ml[0][inner].std() / x_ml[0][inner].mean())
    assert cv < 0.7 * cv_ml
    assert float(x[0][inner].mean()) == pytest.approx(20.0, rel=0.1)
    assert bool((x >= 0).all()) and len(hist.objective) == 6
    if algo == "bsrem":
        assert hist.objective[-1] > hist.objective[0]


@pytest.mark.parametrize("algo", [bsrem, osl_osem])
def test_map_zero_counts_and_zero_sensitivity(geom, algo):
    mask = disc_image(32, 14) > 0
    masked = geom @ ElementwiseMultiply(mask.to(torch.float64))
    y = torch.zeros(geom.out_shape, dtype=torch.float64)
    x = algo(masked, y, RelativeDifferencePrior(), 1.0, n_iter=2, n_subsets=4)
    assert bool(torch.isfinite(x).all()) and bool((x >= 0).all())
    assert float(x[~mask].abs().max()) == 0.0
    y2 = _noisy(masked, 5.0 * disc_image(32, 6))
    x2 = algo(masked, y2, RelativeDifferencePrior(), 5.0, n_iter=2, n_subsets=4)
    assert bool(torch.isfinite(x2).all()) and bool((x2 >= 0).all()) and float(x2[~mask].abs().max()) == 0.0


def test_map_bad_inputs(geom):
    y = torch.ones(geom.out_shape, dtype=torch.float64)
    with pytest.raises(InputError):
        bsrem(geom, y, RelativeDifferencePrior(), -1.0)
    with pytest.raises(InputError):
        osl_osem(geom, y, "rdp", 1.0)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        RelativeDifferencePrior(-1.0)
    lik = PoissonLogLikelihood(geom, y)
    assert lik.n_subsets == 1
