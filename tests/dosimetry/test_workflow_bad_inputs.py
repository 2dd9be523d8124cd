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
