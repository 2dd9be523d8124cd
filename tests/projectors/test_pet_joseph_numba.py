"""The numba CPU kernels of the Joseph projector equal the torch reference path, and behave as operators.

The torch path (batched ``grid_sample``) is the reference: the numba kernels must give the same line
integrals and back projections (float64: to 1e-9, the TOF CDF table's error; float32: to float32
rounding), be exact transposes of each other, not depend on the thread count, and carry gradients.
"""

from __future__ import annotations

import math

import pytest
import torch

from petspect.errors import InputError
from petspect.geometry.pet import ImageGrid, PetScanner
from petspect.geometry.sinogram import SinogramDefinition
from petspect.operators.base import adjointness_test
from petspect.projectors import pet_joseph_numba as nb
from petspect.projectors.pet import PetListmodeProjector, PetSinogramProjector, tof_kernel_of
from petspect.projectors.pet_joseph import TofKernel, joseph_backward, joseph_forward, kernel_backend


def _scanner(tof: bool) -> PetScanner:
    kw = dict(tof_fwhm_ps=200.0, tof_bin_width_ps=120.0, n_tof_bins=17) if tof else {}
    return PetScanner("toy", ring_radius_mm=120.0, crystals_per_ring=64, n_rings=4,
                      crystal_size_mm=(4.0, 4.0, 10.0), ring_spacing_mm=4.0, fov_diameter_mm=180.0, **kw)


def _random_lors(n: int, shape, seed: int, dtype=torch.float64):
    """LOR end points (voxel indices) scattered inside and around the grid: oblique, axial, degenerate."""
    gen = torch.Generator().manual_seed(seed)
    size = torch.tensor(shape, dtype=torch.float64)
    s = torch.rand(n, 3, generator=gen, dtype=torch.float64) * size * 1.8 - 0.4 * size
    e = torch.rand(n, 3, generator=gen, dtype=torch.float64) * size * 1.8 - 0.4 * size
    e[0] = s[0]  # degenerate: no line integral
    e[1, 1:] = s[1, 1:]  # exactly along z
    s[2], e[2] = torch.tensor([-5.0, -5.0, -5.0]), torch.tensor([-2.0, 50.0, -3.0])  # misses the grid
    return s.to(dtype), e.to(dtype)


CASES = ["non-tof", "tof-sino", "tof-lm"]


def _kwargs(case: str, n: int, seed: int) -> dict:
    tof = TofKernel(25.0, 12.0, 11)
    if case == "non-tof":
        return {}
    if case == "tof-sino":
        return {"tof": tof}
    return {"tof": tof, "tof_bin": torch.randint(0, 11, (n,), generator=torch.Generator().manual_seed(seed))}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_numba_equals_torch_reference(case, dtype):
    """Same forward and back projections as the torch path, on oblique, axis-parallel, degenerate and missing LORs."""
    shape, spacing = (7, 12, 10), (2.0, 3.0, 2.5)
    n = 400
    s, e = _random_lors(n, shape, seed=1, dtype=dtype)
    kw = _kwargs(case, n, seed=2)
    gen = torch.Generator().manual_seed(3)
    img = torch.rand(shape, generator=gen, dtype=torch.float64).to(dtype)
    ref = joseph_forward(img, s, e, spacing, backend="torch", **kw)
    out = joseph_forward(img, s, e, spacing, backend="numba", **kw)
    y = torch.rand(ref.shape, generator=gen, dtype=torch.float64).to(dtype)
    ref_b = joseph_backward(y, s, e, shape, spacing, backend="torch", **kw)
    out_b = joseph_backward(y, s, e, shape, spacing, backend="numba", **kw)
    tol = 1e-9 if dtype == torch.float64 else 3e-6
    assert out.dtype == dtype and out_b.dtype == dtype and out.shape == ref.shape and out_b.shape == shape
    assert float((out - ref).abs().max()) <= tol * float(ref.abs().max())
    assert float((out_b - ref_b).abs().max()) <= tol * float(ref_b.abs().max())
    assert float(out[0].abs().sum()) == 0.0 and float(out[2].abs().sum()) == 0.0


@pytest.mark.parametrize("case", CASES)
def test_numba_kernels_are_exact_transposes(case):
    shape, spacing = (6, 9, 11), (3.0, 2.0, 2.0)
    s, e = _random_lors(300, shape, seed=4)
    kw = _kwargs(case, 300, seed=5)
    gen = torch.Generator().manual_seed(6)
    x = torch.rand(shape, generator=gen, dtype=torch.float64)
    ax = nb.forward(x, s, e, spacing, **kw)
    y = torch.rand(ax.shape, generator=gen, dtype=torch.float64)
    aty = nb.backward(y, s, e, shape, spacing, **kw)
    assert abs(float((ax * y).sum() - (x * aty).sum())) <= 1e-12 * float((ax * y).sum())


@pytest.mark.parametrize("tof", [False, True])
def test_sinogram_projector_numba_vs_torch_and_adjoint(monkeypatch, tof):
    """The sinogram operator gives the same data with either kernel and passes the adjointness test with both."""
    sc = _scanner(tof)
    sd = SinogramDefinition(sc, span=3, view_mashing=2, n_radial=30)
    op = PetSinogramProjector(sc, sd, (8, 24, 24), (4.0, 4.0, 4.0), tof=tof)
    x = torch.rand(op.in_shape, generator=torch.Generator().manual_seed(0))
    got = op(x)
    assert adjointness_test(op) < 1e-5
    monkeypatch.setenv("PETSPECT_PET_KERNEL", "torch")
    ref = op(x)
    assert adjointness_test(op) < 1e-5
    assert float((got - ref).abs().max()) <= 3e-6 * float(ref.abs().max())


@pytest.mark.parametrize("tof", [False, True])
def test_listmode_projector_adjoint_with_numba(tof):
    gen = torch.Generator().manual_seed(7)
    n = 500
    phi = torch.rand(n, 2, generator=gen, dtype=torch.float64) * 2 * math.pi
    z = (torch.rand(n, 2, generator=gen, dtype=torch.float64) - 0.5) * 16
    pts = torch.stack([120 * phi.cos(), 120 * phi.sin(), z], -1)
    bins = torch.randint(0, 17, (n,), generator=gen) if tof else None
    op = PetListmodeProjector(pts[:, 0], pts[:, 1], ImageGrid((5, 16, 16), (4.0, 5.0, 5.0)), bins,
                              tof_kernel_of(_scanner(True)) if tof else None)
    assert kernel_backend("auto", torch.zeros(3), op.start_idx, op.end_idx) == "numba"
    assert adjointness_test(op) < 1e-5


@pytest.mark.parametrize("case", CASES)
def test_result_does_not_depend_on_thread_count(case):
    """Forward and back are bitwise the same with 1 and 2 threads (plane-partitioned back projection)."""
    shape, spacing = (20, 40, 36), (2.0, 2.0, 2.0)
    s, e = _random_lors(600, shape, seed=8, dtype=torch.float32)
    kw = _kwargs(case, 600, seed=9)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(10))
    before = torch.get_num_threads()
    try:
        runs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            y = nb.forward(x, s, e, spacing, **kw)
            runs.append((y, nb.backward(y, s, e, shape, spacing, **kw)))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_numba_call_leaves_torch_thread_count_alone():
    """numba's OpenMP pool shares the runtime with torch: a kernel call must not change torch's thread count."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        s, e = _random_lors(50, (4, 5, 6), seed=15)
        y = nb.forward(torch.rand(4, 5, 6), s, e, (1.0, 1.0, 1.0))
        nb.backward(y, s, e, (4, 5, 6), (1.0, 1.0, 1.0))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("back", [False, True])
def test_autograd_through_numba_kernels(back):
    """d<A x, w>/dx = A^T w and d<A^T y, v>/dy = A v when the numba kernels run."""
    shape, spacing = (5, 8, 9), (2.0, 2.0, 2.0)
    s, e = _random_lors(200, shape, seed=11)
    gen = torch.Generator().manual_seed(12)
    if not back:
        x = torch.rand(shape, generator=gen, dtype=torch.float64, requires_grad=True)
        w = torch.rand(200, generator=gen, dtype=torch.float64)
        (joseph_forward(x, s, e, spacing, backend="numba") * w).sum().backward()
        expected = joseph_backward(w, s, e, shape, spacing, backend="torch")
        assert torch.allclose(x.grad, expected, rtol=1e-10, atol=1e-12)
    else:
        y = torch.rand(200, generator=gen, dtype=torch.float64, requires_grad=True)
        v = torch.rand(shape, generator=gen, dtype=torch.float64)
        (joseph_backward(y, s, e, shape, spacing, backend="numba") * v).sum().backward()
        expected = joseph_forward(v, s, e, spacing, backend="torch")
        assert torch.allclose(y.grad, expected, rtol=1e-10, atol=1e-12)


def test_geometry_gradients_use_the_torch_path():
    s, e = _random_lors(10, (4, 4, 4), seed=13)
    s.requires_grad_(True)
    assert kernel_backend("auto", torch.zeros(3, dtype=torch.float64), s, e) == "torch"


def test_backend_choice_and_bad_inputs(monkeypatch):
    s, e = _random_lors(10, (4, 4, 4), seed=14)
    img = torch.rand(4, 4, 4, dtype=torch.float64)
    with pytest.raises(InputError):
        joseph_forward(img, s, e, (1.0, 1.0, 1.0), backend="fortran")
    with pytest.raises(InputError):
        joseph_forward(img.half(), s.half(), e.half(), (1.0, 1.0, 1.0), backend="numba")
    with pytest.raises(InputError):
        joseph_backward(torch.ones(9, dtype=torch.float64), s, e, (4, 4, 4), (1.0, 1.0, 1.0))
    with pytest.raises(InputError):
        joseph_forward(img[0], s, e, (1.0, 1.0, 1.0))
    bad = s.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(InputError):  # a NaN end point would make an unbounded plane range: refused, no crash
        joseph_forward(img, bad, e, (1.0, 1.0, 1.0), backend="numba")
    monkeypatch.setenv("PETSPECT_PET_KERNEL", "gpu-please")
    with pytest.raises(InputError):
        joseph_forward(img, s, e, (1.0, 1.0, 1.0))
    monkeypatch.setenv("PETSPECT_PET_KERNEL", "torch")
    assert kernel_backend("auto", img, s, e) == "torch"
