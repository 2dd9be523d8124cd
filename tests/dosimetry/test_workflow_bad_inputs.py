"""``petspect dose run`` on inputs that gave a wrong dose with exit 0 (QA pass): a CT not in HU, a CT or a later
time point that does not overlap the first SPECT, an implausible registration; and the other input checks."""

import json
import math

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.io import load, save
from petspect.volume import Volume

from .test_workflow_cli import _phantom

FAR = (900.0, 900.0, 900.0)


def _moved(src, dst, origin=FAR, unit=None, shift_mm=None):
    """A copy of the image at ``src`` with another origin (``origin`` or its own + ``shift_mm``)."""
    v = load(src)
    o = origin if shift_mm is None else tuple(float(a) + float(b) for a, b in zip(v.origin_mm, shift_mm))
    save(Volume(v.data, v.spacing_mm, o, v.direction, unit=unit or v.unit, modality=v.modality), dst)
    return dst


def _without_unit(src, dst):
    """The NIfTI at ``src`` as another tool writes it: no petspect extension, empty description (unit unknown)."""
    img = nib.load(str(src))
    out = nib.Nifti1Image(np.asanyarray(img.dataobj).astype(np.float32), img.affine)
    nib.save(out, str(dst))
    return dst


def _run(*args):
    return CliRunner().invoke(app, ["dose", "run", *map(str, args)])


def _base(paths, out, *extra, method="kernel_density"):
    return ("--spect", paths[0], "--hours", 4, "--method", method, "--out", out, *extra)


def _dose_max(out):
    return float(load(out / "dose.nii.gz").numpy().max())


@pytest.fixture
def ph(tmp_path):
    paths, ctp, labp, t_eff = _phantom(tmp_path)
    return tmp_path, paths, ctp, labp


# ---------------------------------------------------------------------------------------------- CT unit


def test_ct_in_bq_per_ml_is_refused_naming_the_file(ph):
    """A SPECT given as --ct was read as HU (dose max 0.032 Gy instead of 0.096 Gy)."""
    tmp, paths, ctp, _ = ph
    out = tmp / "out"
    r = _run(*_base(paths, out, "--ct", paths[0]))
    assert r.exit_code == 2 and "HU" in r.output and "Bq/mL" in r.output and paths[0].name in r.output, r.output
    assert not out.exists()
    ok = _run(*_base(paths, tmp / "ok", "--ct", ctp))
    assert ok.exit_code == 0, ok.output
    assert _dose_max(tmp / "ok") == pytest.approx(0.096, rel=0.1)


def test_attenuation_map_as_ct_is_refused_with_or_without_a_unit(ph):
    """A mu map (1/cm) was read as HU: every voxel near 0 HU, the whole box taken as water."""
    tmp, paths, ctp, _ = ph
    hu = load(ctp)
    mu = hu.with_data(np.where(hu.numpy() > -500, 0.15, 0.0).astype(np.float32), unit="1/cm")
    save(mu, tmp / "mu.nii.gz")
    r = _run(*_base(paths, tmp / "o1", "--ct", tmp / "mu.nii.gz"))
    assert r.exit_code == 2 and "'1/cm'" in r.output and "mu.nii.gz" in r.output, r.output
    _without_unit(tmp / "mu.nii.gz", tmp / "mu_nounit.nii")
    r = _run(*_base(paths, tmp / "o2", "--ct", tmp / "mu_nounit.nii"))
    assert r.exit_code == 2 and "do not look like HU" in r.output and "mu_nounit.nii" in r.output, r.output
    assert "--ct-unit HU" in r.output
    assert not (tmp / "o1").exists() and not (tmp / "o2").exists()


def test_ct_without_unit_is_used_when_its_values_look_like_hu_or_when_stated(ph):
    tmp, paths, ctp, _ = ph
    _without_unit(ctp, tmp / "ct_nounit.nii")
    r = _run(*_base(paths, tmp / "o1", "--ct", tmp / "ct_nounit.nii"))
    assert r.exit_code == 0, r.output
    assert "look like HU" in r.output
    ref = _run(*_base(paths, tmp / "ref", "--ct", ctp))
    assert ref.exit_code == 0, ref.output
    assert _dose_max(tmp / "o1") == pytest.approx(_dose_max(tmp / "ref"), rel=1e-6)
    # a CT cropped to the body (no air): its values alone cannot tell; --ct-unit HU states it
    body = load(ctp).numpy()[2:10, 3:13, 3:13] + 40.0
    save(Volume.centered(body.astype(np.float32), (4.8,) * 3), tmp / "crop.nii.gz")
    _without_unit(tmp / "crop.nii.gz", tmp / "crop_nounit.nii")
    r = _run(*_base(paths, tmp / "o2", "--ct", tmp / "crop_nounit.nii"))
    assert r.exit_code == 2 and "do not look like HU" in r.output, r.output
    r = _run(*_base(paths, tmp / "o3", "--ct", tmp / "crop_nounit.nii", "--ct-unit", "HU"))
    assert r.exit_code == 0, r.output
    # --ct-unit never relabels a file that carries a unit
    r = _run(*_base(paths, tmp / "o4", "--ct", paths[0], "--ct-unit", "HU"))
    assert r.exit_code == 2 and "relabel" in r.output, r.output


def test_ct_with_nan_is_refused(ph):
    tmp, paths, ctp, _ = ph
    hu = load(ctp)
    a = hu.numpy().copy()
    a[0, 0, 0] = np.nan
    save(hu.with_data(a), tmp / "ct_nan.nii.gz")
    r = _run(*_base(paths, tmp / "o", "--ct", tmp / "ct_nan.nii.gz"))
    assert r.exit_code == 2 and "NaN" in r.output and "ct_nan.nii.gz" in r.output, r.output


# ---------------------------------------------------------------------------------------------- CT overlap


def test_ct_that_does_not_overlap_the_spect_is_refused(ph):
    """A CT elsewhere in patient coordinates was resampled as all air: density 0.0012, dose max 79.7 Gy."""
    tmp, paths, ctp, _ = ph
    far = _moved(ctp, tmp / "ct_far.nii.gz")
    r = _run(*_base(paths, tmp / "o", "--ct", far))
    assert r.exit_code == 2 and "ct_far.nii.gz" in r.output and "0 %" in r.output and "overlap" in r.output, r.output
    assert not (tmp / "o").exists()


def test_ct_partial_overlap_below_half_is_refused_and_above_is_used_with_soft_tissue_outside(ph):
    tmp, paths, ctp, _ = ph
    # the body spans x voxels 3..12 (10 voxels); a shift of 10 voxels leaves 3 of them (30 %) under the CT
    low = _moved(ctp, tmp / "ct_low.nii.gz", shift_mm=(10 * 4.8, 0, 0))
    r = _run(*_base(paths, tmp / "o1", "--ct", low))
    assert r.exit_code == 2 and "30 %" in r.output and "ct_low.nii.gz" in r.output, r.output
    # a CT of the same body cut 2 voxels short in x: 80 % of the body under it; the rest is taken as soft tissue
    a = load(ctp)
    cut = Volume(a.data[:, :, :11], a.spacing_mm, a.origin_mm, a.direction, unit="HU")
    save(cut, tmp / "ct_cut.nii.gz")
    r = _run(*_base(paths, tmp / "o2", "--ct", tmp / "ct_cut.nii.gz"))
    assert r.exit_code == 0, r.output
    assert "80 %" in r.output and "soft tissue" in r.output
    ref = _run(*_base(paths, tmp / "ref"))  # no CT: soft tissue everywhere
    assert ref.exit_code == 0, ref.output
    d_cut, d_ref = load(tmp / "o2" / "dose.nii.gz").numpy(), load(tmp / "ref" / "dose.nii.gz").numpy()
    assert d_cut.max() == pytest.approx(0.096, rel=0.1)
    # beyond the CT's edge the dose is the soft-tissue dose, not the air dose (x 800)
    assert np.allclose(d_cut[..., 12:], d_ref[..., 12:], rtol=0.05, atol=1e-6 * d_ref.max())


def test_dicom_ct_that_does_not_overlap_is_refused_naming_the_folder(ph):
    from petspect.io import write_dicom_series

    tmp, paths, ctp, _ = ph
    ct = load(ctp)
    write_dicom_series(Volume(ct.data, ct.spacing_mm, FAR, ct.direction, unit="HU", modality="CT"), tmp / "ct_dcm")
    r = _run(*_base(paths, tmp / "o", "--ct", tmp / "ct_dcm", method="local_deposition"))
    assert r.exit_code == 2 and "ct_dcm" in r.output and "overlap" in r.output, r.output


# ---------------------------------------------------------------------------------------------- later time points


def _two(paths, second, out, *extra):
    return ("--spect", paths[0], "--hours", 4, "--spect", second, "--hours", 24, "--method", "local_deposition",
            "--out", out, *extra)


def test_later_time_point_that_does_not_overlap_is_refused(ph):
    """A later image elsewhere in patient coordinates was resampled as zero activity: TIA 6.97 instead of 43.1."""
    tmp, paths, _, _ = ph
    far = _moved(paths[1], tmp / "far.nii.gz")
    r = _run(*_two(paths, far, tmp / "o", "--no-register"))
    assert r.exit_code == 2 and "far.nii.gz" in r.output and "0 %" in r.output, r.output
    assert not (tmp / "o").exists()
    ok = _run(*_two(paths, paths[1], tmp / "ok", "--no-register"))
    assert ok.exit_code == 0, ok.output
    tia = json.loads((tmp / "ok" / "dose.json").read_text())["total_tia_mbq_h"]
    assert tia == pytest.approx(43.1, rel=0.02)


def test_later_time_point_partly_outside_uses_the_time_points_it_has(ph):
    """A later image cut short: voxels outside it are integrated from the time points that cover them."""
    tmp, paths, _, _ = ph
    v = load(paths[1])
    save(Volume(v.data[:, :, :11], v.spacing_mm, v.origin_mm, v.direction, unit="Bq/mL"), tmp / "cut.nii.gz")
    r = _run(*_two(paths, tmp / "cut.nii.gz", tmp / "o", "--no-register"))
    assert r.exit_code == 0, r.output
    assert "80 %" in r.output and "cut.nii.gz" in r.output
    rec = json.loads((tmp / "o" / "dose.json").read_text())
    # the voxels outside hold one time point (Hanscheid at 4 h): their TIA is positive, none is lost to zero
    d = load(tmp / "o" / "dose.nii.gz").numpy()
    assert np.all(d[2:10, 3:13, 11:13] > 0)
    assert rec["total_tia_mbq_h"] > 0.8 * 43.1
    low = _moved(paths[1], tmp / "low.nii.gz", shift_mm=(10 * 4.8, 0, 0))
    r = _run(*_two(paths, low, tmp / "o2", "--no-register"))
    assert r.exit_code == 2 and "30 %" in r.output and "low.nii.gz" in r.output, r.output


def test_one_ct_for_far_time_points_is_refused(ph):
    tmp, paths, ctp, _ = ph
    far = _moved(paths[1], tmp / "far.nii.gz")
    r = _run(*_two(paths, far, tmp / "o", "--ct", ctp))
    assert r.exit_code == 2 and "far.nii.gz" in r.output, r.output


def test_registration_that_moves_an_image_implausibly_far_is_refused(ph):
    """CTs 1.56 m apart were 'registered' (message 'registered 1 later CT(s)') and the TIA was wrong."""
    tmp, paths, ctp, _ = ph
    far = _moved(paths[1], tmp / "far.nii.gz")
    ct_far = _moved(ctp, tmp / "ct_far.nii.gz")
    r = _run(*_two(paths, far, tmp / "o", "--ct", ctp, "--ct", ct_far))
    assert r.exit_code == 2 and "ct_far.nii.gz" in r.output and "mm" in r.output, r.output
    assert "registered 1 later" not in r.output
    assert not (tmp / "o").exists()


def test_later_ct_that_does_not_overlap_its_own_spect_is_refused(ph):
    tmp, paths, ctp, _ = ph
    ct_far = _moved(ctp, tmp / "ct_far.nii.gz")
    r = _run(*_two(paths, paths[1], tmp / "o", "--ct", ctp, "--ct", ct_far))
    assert r.exit_code == 2 and "ct_far.nii.gz" in r.output and "overlap" in r.output, r.output


def test_registration_of_a_small_shift_is_used(ph):
    """A later SPECT/CT pair moved 9.6 mm: registered back, the kidney's TIA as for aligned images (region sums;
    voxel TIAs at the kidney's edge are sensitive to the sub-voxel registration error)."""
    tmp, paths, ctp, labp = ph
    s = _moved(paths[1], tmp / "s24_moved.nii.gz", shift_mm=(9.6, 0, 0))
    c = _moved(ctp, tmp / "ct_moved.nii.gz", shift_mm=(9.6, 0, 0))
    r = _run(*_two(paths, s, tmp / "o", "--ct", ctp, "--ct", c, "--labels", labp))
    assert r.exit_code == 0, r.output
    assert "registered 1 later" in r.output
    ref = _run(*_two(paths, paths[1], tmp / "ref", "--no-register", "--labels", labp))
    assert ref.exit_code == 0, ref.output
    got, want = (json.loads((tmp / k / "dose.json").read_text())["regions"][0]["tia_mbq_h"] for k in ("o", "ref"))
    assert got == pytest.approx(want, rel=0.03)


def test_voxel_tia_with_gaps_integrates_each_voxel_from_its_time_points():
    from petspect.dosimetry import tac
    from petspect.dosimetry.workflow import voxel_tia_with_gaps

    rng = np.random.default_rng(0)
    t = [4.0, 24.0, 96.0]
    x = rng.uniform(1.0, 10.0, size=(3, 2, 3, 4))
    full = tac.voxel_tia(x, t, physical_half_life_h=159.5)
    assert np.array_equal(voxel_tia_with_gaps(x, t, physical_half_life_h=159.5), full)
    g = x.copy()
    g[2, 0] = np.nan  # first slice lacks 96 h
    g[1:, 1, 0] = np.nan  # one row has 4 h only
    g[:, 1, 1, 1] = np.nan  # one voxel has none
    out = voxel_tia_with_gaps(g, t, physical_half_life_h=159.5)
    assert np.allclose(out[0], tac.voxel_tia(x[:2, 0], t[:2], physical_half_life_h=159.5))
    assert np.allclose(out[1, 0], x[0, 1, 0] * 2 * 4.0 / math.log(2))
    assert out[1, 1, 1] == 0.0
    assert np.array_equal(out[1, 2], full[1, 2])


# ---------------------------------------------------------------------------------------------- other inputs


@pytest.mark.parametrize("hours, message", [((0, 24), "positive and finite"), ((-4, 24), "positive and finite"),
                                            ((24, 24), "same time twice"), ((14400, 86400), "half-lives")])
def test_bad_hours_are_refused(ph, hours, message):
    tmp, paths, _, _ = ph
    r = _run("--spect", paths[0], "--hours", hours[0], "--spect", paths[1], "--hours", hours[1], "--out", tmp / "o",
             "--method", "local_deposition")
    assert r.exit_code == 2 and message in r.output, r.output


def test_hours_not_in_order_give_the_same_dose(ph):
    tmp, paths, _, labp = ph
    fwd = _run("--spect", paths[0], "--hours", 4, "--spect", paths[1], "--hours", 24, "--spect", paths[2], "--hours",
               96, "--labels", labp, "--out", tmp / "fwd", "--method", "local_deposition")
    rev = _run("--spect", paths[2], "--hours", 96, "--spect", paths[0], "--hours", 4, "--spect", paths[1], "--hours",
               24, "--labels", labp, "--out", tmp / "rev", "--method", "local_deposition")
    assert fwd.exit_code == 0 and rev.exit_code == 0, fwd.output + rev.output
    a, b = (json.loads((tmp / k / "dose.json").read_text()) for k in ("fwd", "rev"))
    assert a["total_tia_mbq_h"] == pytest.approx(b["total_tia_mbq_h"], rel=1e-9)
    assert a["regions"][0]["tia_mbq_h"] == pytest.approx(b["regions"][0]["tia_mbq_h"], rel=1e-9)


def test_the_same_image_at_two_times_is_refused(ph):
    """One file (or identical data) given for two times gave a flat TAC and a silently wrong TIA."""
    tmp, paths, _, _ = ph
    r = _run("--spect", paths[0], "--hours", 4, "--spect", paths[0], "--hours", 24, "--out", tmp / "o",
             "--method", "local_deposition")
    assert r.exit_code == 2 and "same image" in r.output and paths[0].name in r.output, r.output
    copy = _moved(paths[0], tmp / "copy.nii.gz", shift_mm=(0, 0, 0))
    r = _run("--spect", paths[0], "--hours", 4, "--spect", copy, "--hours", 24, "--out", tmp / "o",
             "--method", "local_deposition")
    assert r.exit_code == 2 and "same image" in r.output and "copy.nii.gz" in r.output, r.output


def test_counts_with_calibration_give_the_calibrated_dose(ph):
    tmp, paths, _, _ = ph
    v = load(paths[0])
    cal = 25.0  # Bq per count
    counts = v.numpy() * v.voxel_volume_ml / cal
    save(v.with_data(counts.astype(np.float32), unit="counts"), tmp / "counts.nii.gz")
    ref = _run(*_base(paths, tmp / "ref", method="local_deposition"))
    r = _run("--spect", tmp / "counts.nii.gz", "--hours", 4, "--method", "local_deposition", "--out", tmp / "o",
             "--calibration-bq-per-count", cal)
    assert ref.exit_code == 0 and r.exit_code == 0, ref.output + r.output
    assert _dose_max(tmp / "o") == pytest.approx(_dose_max(tmp / "ref"), rel=1e-5)
    # counts from another tool (unit unknown) are refused even with a calibration, until the unit is stated
    _without_unit(tmp / "counts.nii.gz", tmp / "counts_nounit.nii")
    args = ("--spect", tmp / "counts_nounit.nii", "--hours", 4, "--method", "local_deposition",
            "--calibration-bq-per-count", cal)
    r = _run(*args, "--out", tmp / "o2")
    assert r.exit_code == 2 and "--spect-unit" in r.output and "counts_nounit.nii" in r.output, r.output
    r = _run(*args, "--out", tmp / "o3", "--spect-unit", "counts")
    assert r.exit_code == 0, r.output
    assert _dose_max(tmp / "o3") == pytest.approx(_dose_max(tmp / "ref"), rel=1e-5)
    # a calibrated image from another tool: --spect-unit Bq/mL
    _without_unit(paths[0], tmp / "bqml_nounit.nii")
    r = _run("--spect", tmp / "bqml_nounit.nii", "--hours", 4, "--method", "local_deposition", "--out", tmp / "o4",
             "--spect-unit", "Bq/mL")
    assert r.exit_code == 0, r.output
    assert _dose_max(tmp / "o4") == pytest.approx(_dose_max(tmp / "ref"), rel=1e-5)
    # --spect-unit never relabels a file that carries a unit
    r = _run(*_base(paths, tmp / "o5", "--spect-unit", "counts"))
    assert r.exit_code == 2 and "relabel" in r.output, r.output


def test_some_negative_voxels_are_zeroed_and_said(ph):
    tmp, paths, _, _ = ph
    v = load(paths[0])
    a = v.numpy().copy()
    a[0, 0, :4] = -50.0  # reconstruction noise in air
    save(v.with_data(a), tmp / "neg.nii.gz")
    ref = _run(*_base(paths, tmp / "ref", method="local_deposition"))
    r = _run("--spect", tmp / "neg.nii.gz", "--hours", 4, "--method", "local_deposition", "--out", tmp / "o")
    assert ref.exit_code == 0 and r.exit_code == 0, ref.output + r.output
    assert "negative voxels set to zero" in r.output and "neg.nii.gz" in r.output
    assert np.array_equal(load(tmp / "o" / "dose.nii.gz").numpy(), load(tmp / "ref" / "dose.nii.gz").numpy())


def test_labels_on_a_finer_grid_give_the_same_regions(ph):
    """Labels at 2.4 mm (a CT segmentation) resampled nearest onto the 4.8 mm dose grid: same region volume."""
    tmp, paths, _, labp = ph
    lab = load(labp)
    fine = np.repeat(np.repeat(np.repeat(lab.numpy(), 2, 0), 2, 1), 2, 2)
    origin = tuple(o - 1.2 for o in lab.origin_mm)  # the fine voxels' centres 1.2 mm off the coarse ones
    save(Volume(fine, (2.4,) * 3, origin, lab.direction, unit="label"), tmp / "fine.nii.gz")
    res = {}
    for name, lp in (("coarse", labp), ("fine", tmp / "fine.nii.gz")):
        r = _run(*_base(paths, tmp / name, "--labels", lp, method="local_deposition"))
        assert r.exit_code == 0, r.output
        res[name] = json.loads((tmp / name / "dose.json").read_text())["regions"][0]
    assert res["fine"]["volume_ml"] == pytest.approx(res["coarse"]["volume_ml"], rel=1e-9)
    assert res["fine"]["mean_gy"] == pytest.approx(res["coarse"]["mean_gy"], rel=1e-9)


def test_label_region_partly_outside_the_spect_is_said(ph):
    tmp, paths, _, labp = ph
    lab = load(labp)
    a = np.zeros((12, 16, 24), np.int16)
    a[4:8, 6:10, 13:19] = 2  # 6 voxels wide in x, 3 of them inside the SPECT (x < 16)
    save(Volume(a, (4.8,) * 3, lab.origin_mm, lab.direction, unit="label"), tmp / "wide.nii.gz")
    r = _run(*_base(paths, tmp / "o", "--labels", tmp / "wide.nii.gz", method="local_deposition"))
    assert r.exit_code == 0, r.output
    reg = json.loads((tmp / "o" / "dose.json").read_text())["regions"][0]
    assert reg["in_fov_fraction"] == pytest.approx(0.5, abs=1e-9)
    assert "label_2" in r.output and "50 %" in r.output
    assert math.isfinite(reg["mean_gy"])


def test_dicom_nm_without_units_and_far_dicom_time_point(ph):
    """DICOM in, RT Dose out: an NM series without Units (0054,1001) was taken as counts; now its unit is stated or
    it is refused; a later DICOM time point elsewhere in patient coordinates is refused naming its folder."""
    import pydicom

    from petspect.io import write_dicom_series

    tmp, paths, _, _ = ph
    for i, (name, origin) in enumerate((("nm4", None), ("nm24_far", FAR))):
        v = load(paths[i])
        write_dicom_series(Volume(v.data, v.spacing_mm, origin or v.origin_mm, v.direction, unit="a.u.",
                                  modality="NM"), tmp / name)
    r = _run("--spect", tmp / "nm4", "--hours", 4, "--method", "local_deposition", "--out", tmp / "o1")
    assert r.exit_code == 2 and "--spect-unit" in r.output and "nm4" in r.output, r.output
    ref = _run(*_base(paths, tmp / "ref", method="local_deposition"))
    r = _run("--spect", tmp / "nm4", "--hours", 4, "--method", "local_deposition", "--out", tmp / "o2",
             "--spect-unit", "Bq/mL")
    assert ref.exit_code == 0 and r.exit_code == 0, ref.output + r.output
    ds = pydicom.dcmread(tmp / "o2" / "rtdose.dcm")
    rt = ds.pixel_array.astype(float) * float(ds.DoseGridScaling)
    assert rt.max() == pytest.approx(_dose_max(tmp / "ref"), rel=1e-4)
    r = _run("--spect", tmp / "nm4", "--hours", 4, "--spect", tmp / "nm24_far", "--hours", 24, "--spect-unit",
             "Bq/mL", "--method", "local_deposition", "--out", tmp / "o3")
    assert r.exit_code == 2 and "nm24_far" in r.output and "0 %" in r.output, r.output
    assert not (tmp / "o3").exists()


def test_time_point_registration_is_reproducible():
    """The CT registration of later time points drew its metric samples with SimpleITK's seed 0, which means
    'seed from the wall clock', so two runs of the same `dose run` gave different transforms and TIAs."""
    from petspect.dosimetry.workflow import rigid_register

    z, y, x = np.indices((16, 24, 24))
    hu = np.where(((y - 12) / 9.0) ** 2 + ((x - 12) / 10.0) ** 2 <= 1, 0.0, -1000.0)
    hu[4:12, 8:14, 6:11] = 60.0
    hu[6:10, 14:17, 14:18] = 700.0
    fixed = Volume.centered(hu.astype(np.float32), (4.8, 4.8, 4.8), unit="HU")
    moving = Volume(fixed.data, fixed.spacing_mm, tuple(o + d for o, d in zip(fixed.origin_mm, (5.0, -3.0, 4.0))),
                    unit="HU")
    a, b = rigid_register(fixed, moving), rigid_register(fixed, moving)
    assert a.GetParameters() == b.GetParameters()
    np.testing.assert_allclose(np.asarray(a.GetParameters())[3:], (5.0, -3.0, 4.0), atol=1.5)
