"""Deep-learning dosimetry pieces and ``petspect study dose --preset tiny`` (CliRunner)."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.dosimetry import dl, kernels
from petspect.errors import InputError


def test_kernel_net_shapes_and_fractions():
    net = dl.KernelNet(7, 5)
    x = torch.rand(3, 1, 7, 7, 7) + 0.5
    assert net(x).shape == (3, 126)
    f = net.fractions(x)
    assert f.shape == (3, 125) and torch.all(f >= 0) and torch.all(f.sum(1) <= 1 + 1e-6)
    with pytest.raises(InputError):
        dl.KernelNet(4, 5)


def test_mc_patch_kernels_conserve_energy_in_soft_tissue():
    """Homogeneous soft-tissue patches: the K^3 fractions sum to ~1 (Lu-177 electrons stay within 2 voxels of
    4.8 mm) and the centre fraction matches the kernel's absorbed fraction (voxel_kernel, electrons only)."""
    dens = np.full((2, 7, 7, 7), 1.03)
    frac = dl.mc_electron_kernels(dens, "Lu-177", 4.8, 5, electrons_per_patch=3000, seed=0)
    assert frac.sum(axis=(1, 2, 3)) == pytest.approx([1.0, 1.0], abs=0.01)
    k = kernels.voxel_kernel("Lu-177", 4.8, half_width=1, components=("electrons",))
    from petspect.dosimetry.spectra import emissions

    e = emissions("Lu-177").mean_electron_energy_mev()
    full = e * kernels.MEV_TO_J / (1.03 * 4.8 ** 3 * 1e-6) * 1e9  # mGy/(MBq s) if all absorbed
    assert frac[:, 2, 2, 2].mean() == pytest.approx(k.centre / full, rel=0.03)


def test_untrained_dose_net_is_the_density_kernel():
    """The DL dose starts at the density-scaled kernel dose (zero-initialised last layer)."""
    model = dl.DoseModel(dl.DoseNet(), 0.0, 0.0, 0.0, 0)
    tia = np.random.default_rng(0).random((6, 10, 10))
    base = tia * 2.0
    out = dl.dl_dose(model, tia, np.ones_like(tia), base, base)
    assert np.allclose(out, base)


@pytest.mark.slow
def test_study_dose_tiny(tmp_path):
    """The study writes metrics for every method against Monte Carlo, with intervals, checks and test_scored."""
    out = tmp_path / "study"
    res = CliRunner().invoke(app, ["study", "dose", "--preset", "tiny", "--out", str(out)])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    for m in ("local_deposition", "kernel_water", "kernel_density", "dl_kernel", "dl_dose"):
        for k in ("voxel_dose_error_pct", "organ_dose_bias_pct", "lesion_dose_bias_pct", "wall_s"):
            assert k in metrics[m] or k == "lesion_dose_bias_pct"
        assert "voxel_dose_error_pct_ci95" in metrics[m]
    assert "wall_s" in metrics["monte_carlo"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "dose" and summary["test_scored"] == 1 and summary["inverse_crime"] is None
    assert len(summary["checks"]) == 5
    assert (out / "report" / "index.html").is_file()
    bad = CliRunner().invoke(app, ["study", "dose", "--preset", "huge", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2
