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


def test_untrained_dose_net_is_the_physics_base():
    """The DL dose starts at its physics base, electron + photon dose (zero-initialised last layer)."""
    model = dl.DoseModel(dl.DoseNet(), 0.0, 0.0, 0.0, 0)
    tia = np.random.default_rng(0).random((6, 10, 10))
    e, ph = tia * 2.0, tia * 0.5
    out = dl.dl_dose(model, tia, np.ones_like(tia), e, ph)
    assert np.allclose(out, e + ph, rtol=1e-6)
    assert dl.DoseNet()(torch.zeros(1, 4, 5, 6, 7)).shape == (1, 1, 5, 6, 7)



def test_dose_net_onednn_inference_matches_the_default_path():
    """The oneDNN inference path (no autograd, CPU float32) gives the default convolutions' output to float32
    rounding, on a trained-like (non-zero) network; with autograd on, the default path runs (training)."""
    with torch.random.fork_rng():
        torch.manual_seed(3)
        net = dl.DoseNet(8).eval()
        torch.nn.init.normal_(net.out.weight, std=0.2)
        x = torch.randn(1, 4, 7, 12, 10)
    with torch.no_grad():
        fast = net(x)
        assert dl._use_onednn(x) == dl._use_onednn_available()
        ref = net.out(torch.cat([net.features(x), x], 1))  # the layers called directly (default dispatch)
    assert fast.shape == (1, 1, 7, 12, 10) and float(ref.abs().max()) > 0.05
    assert torch.allclose(fast, ref, rtol=1e-4, atol=1e-5)
    assert not dl._use_onednn(x)  # autograd enabled here: training uses the default path
    assert torch.allclose(net(x).detach(), ref, rtol=1e-4, atol=1e-5)

def test_physics_base_scales_electrons_not_photons_with_density():
    """Electron dose goes as 1/rho (energy absorbed locally, divided by the voxel's mass); photon dose does not."""
    tia = np.zeros((9, 9, 9))
    tia[4, 4, 4] = 1.0
    ke = kernels.voxel_kernel("Lu-177", 4.8, half_width=2, components=("electrons",)).values
    kp = kernels.voxel_kernel("Lu-177", 4.8, half_width=2, components=("photons",)).values
    e1, p1 = dl.physics_base_dose(tia, np.full(tia.shape, 1.03), ke, kp)
    e2, p2 = dl.physics_base_dose(tia, np.full(tia.shape, 0.3), ke, kp)
    assert e2[4, 4, 4] == pytest.approx(e1[4, 4, 4] * 1.03 / 0.3, rel=1e-9)
    assert np.allclose(p1, p2)
    assert e1[4, 4, 4] == pytest.approx(ke[2, 2, 2] * 1e-3, rel=1e-6)  # mGy/(MBq s) x 1 MBq s -> Gy


def _synthetic_case(seed, factor):
    rng = np.random.default_rng(seed)
    tia = rng.random((6, 12, 12)) + 0.1
    dens = np.where(rng.random(tia.shape) < 0.3, 0.3, 1.03)
    e, ph = tia * 2.0 / dens, np.full(tia.shape, 0.2)
    regions = (np.arange(tia.size).reshape(tia.shape) % 4) + 1
    # "Monte Carlo": the base dose off by a density-dependent factor, plus zero-mean noise
    mc = (e + ph) * np.where(dens < 0.5, factor, 1.0) * (1 + 0.05 * rng.standard_normal(tia.shape))
    return {"tia": tia, "density": dens, "electron_dose": e, "photon_dose": ph, "mc": mc, "regions": regions}


def test_dose_model_learns_a_density_dependent_correction():
    """Where the reference differs from the base by a factor in low-density voxels, training finds it and
    validation picks a trained epoch over the untrained base; where it does not, the base stays."""
    train = [_synthetic_case(s, 1.3) for s in range(3)]
    val = [_synthetic_case(10, 1.3)]
    model = dl.train_dose_model(train, val, epochs=30, seed=0, lr=5e-3)
    assert model.epoch > 0 and model.val_loss < 0.5 * model.base_val_loss
    c = val[0]
    pred = dl.dl_dose(model, c["tia"], c["density"], c["electron_dose"], c["photon_dose"])
    ratio = pred / (c["electron_dose"] + c["photon_dose"])
    assert np.median(ratio[c["density"] < 0.5]) == pytest.approx(1.3, abs=0.1)
    assert np.median(ratio[c["density"] > 0.5]) == pytest.approx(1.0, abs=0.06)
    with pytest.raises(InputError):
        dl.train_dose_model([], val)


@pytest.mark.slow
def test_study_dose_tiny(tmp_path):
    """The study writes metrics for every method against Monte Carlo, with intervals, checks and test_scored."""
    out = tmp_path / "study"
    res = CliRunner().invoke(app, ["study", "dose", "--preset", "tiny", "--out", str(out)])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    for m in ("local_deposition", "kernel_water", "kernel_density", "kernel_split", "dl_kernel", "dl_dose"):
        for k in ("voxel_dose_error_pct", "organ_dose_bias_pct", "lesion_dose_bias_pct", "wall_s", "cpu_s"):
            assert k in metrics[m] or k == "lesion_dose_bias_pct"
        assert "voxel_dose_error_pct_ci95" in metrics[m]
    assert "wall_s" in metrics["monte_carlo"] and "cpu_s" in metrics["monte_carlo"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "dose" and summary["test_scored"] == 1 and summary["inverse_crime"] is None
    assert len(summary["checks"]) == 5
    assert (out / "report" / "index.html").is_file()
    bad = CliRunner().invoke(app, ["study", "dose", "--preset", "huge", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2
