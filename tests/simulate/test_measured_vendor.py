"""A synthetic GE-style Lu-177 SPECT/CT study in DICOM, as a camera writes it: one folder with the NM TOMO
file (6 energy windows, two photopeaks both named Lu177_EM, MEGP collimator, detector position in the
patient) and the CT slices in the same frame of reference on their own grid. petspect recon reads the
folder, picks the 208 keV window and GE's MEGP, resamples the CT onto the SPECT grid, converts HU to mu at
208 keV, and recovers the activity; beds are joined; wrong frames of reference and ambiguous choices are
refused with the choices listed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.errors import GeometryError, InputError
from petspect.io import load
from petspect.io.nm import read_nm_beds, read_nm_projections
from petspect.materials import hu_to_mu_per_mm
from petspect.projectors.spect import SpectProjector
from petspect.simulate.measured import choose_window, nm_image_grid, spect_acquisition
from petspect.systems.collimators import get_collimator

sys.path.insert(0, str(Path(__file__).parents[1] / "io"))
import dicom_factory as fac  # noqa: E402

ROWS, COLS, PIX, VIEWS, S, T = 6, 16, 4.4, 8, 100.0, 20.0  # detector, pixel mm, views per head, cps/MBq, s
WINDOWS = (("Lu177_EM", 101.7, 124.3), ("Lu177_EM", 187.2, 228.8), ("Lu177_SC", 84.7, 101.7),
           ("Lu177_SC", 166.4, 187.2), ("Lu177_SC", 228.8, 249.6), ("Lu177_SC", 124.3, 140.0))
IPP, TABLE_MM = (1.5, 0.0, -40.0), 12.0  # GE writes Sy = 0 (PyTomography's rule then applies TableHeight)
CONC = 2.0e6  # Bq/mL (high, so the uint16 frames hold ~1000s of counts)


def _phantom(grid_shape):
    nz, ny, nx = grid_shape
    z, y, x = torch.meshgrid(*(torch.arange(n) - (n - 1) / 2 for n in (nz, ny, nx)), indexing="ij")
    return (y * PIX) ** 2 + (x * PIX) ** 2 < 24.0 ** 2  # water cylinder of radius 24 mm on the rotation axis


def _nm(frame_uid: str, z_mm: float = IPP[2], study_uid: str | None = None):
    """The NM instance (counts of the 208 keV window from petspect's model with GE MEGP and water attenuation)."""
    ds = fac.nm_tomo(n_views=VIEWS, rows=ROWS, cols=COLS, step_deg=360.0 / (2 * VIEWS), starts_deg=(0.0, 180.0),
                     radial=((200.0,), (200.0,)), windows=WINDOWS)
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    ds.PixelSpacing = [PIX, PIX]
    ds.FrameOfReferenceUID = frame_uid
    if study_uid:
        ds.StudyInstanceUID = study_uid
    for item in ds.DetectorInformationSequence:
        item.CollimatorGridName, item.CollimatorType = "MEGP", "PARA"
        item.ImagePositionPatient = [IPP[0], IPP[1], z_mm]
    ds.RotationInformationSequence[0].TableHeight = TABLE_MM
    return ds


def _fill(ds, tmp: Path):
    """Replace the factory's frames with the model's expected counts, in the reader's view order."""
    path = tmp / "probe"
    fac.write([ds], path)
    proj = read_nm_projections(path)
    shape = (ROWS, COLS, COLS)
    mu = _phantom(shape).float() * float(hu_to_mu_per_mm(torch.tensor(0.0), 208.0))
    op = SpectProjector(shape, (PIX, PIX, PIX), proj.angles_deg, proj.radius_mm,
                        get_collimator("ge-megp").at_energy(208.0), mu=mu, psf=True, detector_shape=(ROWS, COLS),
                        pixel_mm=(PIX, PIX), sensitivity_cps_per_mbq=S, frame_duration_s=T)
    peak = op(_phantom(shape).float() * CONC).numpy()
    frames = np.zeros((len(WINDOWS), peak.shape[0], ROWS, COLS))
    frames[1] = peak
    frames[0] = 0.5 * peak  # the 113 keV window, different so a wrong pick shows
    fac.set_pixels(ds, np.round(frames.reshape(-1, ROWS, COLS)).astype(np.uint16))
    for f in path.iterdir():
        f.unlink()
    path.rmdir()
    return ds


def _ct(frame_uid: str, grid, spacing=(3.0, 2.0, 2.0), n=(14, 40, 40)):
    """CT slices (HU) of the same water cylinder on a finer grid centred on the SPECT grid's axis."""
    vol = grid.volume(torch.zeros(grid.shape))
    centre = vol.voxel_to_world(np.asarray([(s - 1) / 2 for s in grid.shape]))
    nz, ny, nx = n
    origin = centre - np.asarray([(nx - 1) / 2 * spacing[2], (ny - 1) / 2 * spacing[1], (nz - 1) / 2 * spacing[0]])
    z, y, x = np.meshgrid(*(np.arange(k) - (k - 1) / 2 for k in n), indexing="ij")
    hu = np.where((y * spacing[1]) ** 2 + (x * spacing[2]) ** 2 < 24.0 ** 2, 0.0, -1000.0)
    return fac.slice_stack(hu, modality="CT", spacing=spacing, origin=tuple(origin), FrameOfReferenceUID=frame_uid)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ge")
    frame = generate_uid()
    nm = _fill(_nm(frame), tmp)
    folder = tmp / "study"
    fac.write([nm], folder)
    grid = nm_image_grid(read_nm_projections(folder / "im0000.dcm"))
    ct = _ct(frame, grid)
    for i, ds in enumerate(ct):
        ds.save_as(folder / f"ct{i:04d}.dcm", enforce_file_format=True)
    return folder, grid


def test_windows_named_alike_stay_apart_and_are_chosen_by_energy(study):
    folder, _ = study
    proj = read_nm_projections(folder)  # the folder also holds the CT slices
    names = [w.name for w in proj.energy_windows]
    assert names[:2] == ["Lu177_EM#1", "Lu177_EM#2"] and len(set(names)) == 6
    assert choose_window(proj, "208").photopeak_window == 1
    assert choose_window(proj, 113.0).photopeak_window == 0
    assert choose_window(proj, "Lu177_EM#2").photopeak_window == 1 == choose_window(proj, "#2").photopeak_window
    with pytest.raises(InputError, match="2 photopeak windows"):
        choose_window(proj)
    with pytest.raises(InputError, match="several windows are named"):
        choose_window(proj, "lu177_em")
    with pytest.raises(InputError, match="no energy window contains 364"):
        choose_window(proj, "364 keV")


def test_grid_placed_from_the_header(study):
    """PyTomography's rule for GE (Sy = 0): x0 = Sx - N/2 dx, y0 = -N/2 dy - TableHeight; rows from Sz down."""
    _, grid = study
    assert grid.shape == (ROWS, COLS, COLS)
    np.testing.assert_allclose(grid.origin_mm, (IPP[0] - COLS / 2 * PIX, -COLS / 2 * PIX - TABLE_MM,
                                                IPP[2] - (ROWS - 1) * PIX))


def test_recon_of_the_study_folder_with_its_own_ct(study, tmp_path):
    folder, grid = study
    runner = CliRunner()
    args = ["recon", str(folder), "--iterations", "6", "--subsets", "4", "--sensitivity-cps-per-mbq", str(S)]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "x.nii")])
    assert r.exit_code == 2 and "--window" in r.output and "Lu177_EM#2" in r.output, r.output
    r = runner.invoke(app, [*args, "--window", "208", "--collimator", "ge-megp", "--mu", str(folder),
                            "--out", str(tmp_path / "ac.nii.gz")])
    assert r.exit_code == 0, r.output
    assert "Lu177_EM#2" in r.output and "ge-megp" in r.output and "Lu177_SC#4" in r.output
    ac = load(tmp_path / "ac.nii.gz")
    np.testing.assert_allclose(ac.origin_mm, grid.origin_mm, atol=1e-3)  # where the patient was
    inner = _phantom(ac.shape) & (torch.arange(ROWS) > 0)[:, None, None] & (torch.arange(ROWS) < ROWS - 1)[:, None,
                                                                                                          None]
    assert float(ac.data[inner].mean()) == pytest.approx(CONC, rel=0.1)
    # the header's collimator (MEGP of GE) is the default; without the CT the image is low (no AC)
    r = runner.invoke(app, [*args, "--window", "Lu177_EM#2", "--out", str(tmp_path / "nac.nii.gz")])
    assert r.exit_code == 0 and "from the header" in r.output, r.output
    assert float(load(tmp_path / "nac.nii.gz").data[inner].mean()) < 0.85 * CONC
    # a map from elsewhere (NIfTI, no unit, on the grid) with its unit stated: the same AC image
    import nibabel as nib

    from petspect.io.nifti import lps_affine_to_nifti
    from petspect.simulate.measured import load_attenuation, mu_on_grid

    mu = mu_on_grid(load_attenuation(folder), grid, 208.0, placed=True)
    vol = grid.volume(mu)
    nib.save(nib.Nifti1Image(mu.numpy().transpose(2, 1, 0), lps_affine_to_nifti(vol.affine)), tmp_path / "mu.nii")
    r = runner.invoke(app, [*args, "--window", "208", "--mu", str(tmp_path / "mu.nii"), "--out", str(tmp_path / "m.nii")])
    assert r.exit_code == 2 and "--mu-unit" not in r.output and "1/mm, 1/cm or HU" in r.output, r.output
    r = runner.invoke(app, [*args, "--window", "208", "--mu", str(tmp_path / "mu.nii"), "--mu-unit", "1/mm",
                            "--out", str(tmp_path / "m.nii")])
    assert r.exit_code == 0, r.output
    torch.testing.assert_close(load(tmp_path / "m.nii").data, ac.data, rtol=1e-3, atol=1e-3 * float(ac.data.max()))


def test_ct_of_another_frame_of_reference_is_refused(study, tmp_path):
    folder, grid = study
    ct_dir = tmp_path / "other_ct"
    fac.write(_ct(generate_uid(), grid), ct_dir)
    proj = read_nm_projections(folder)
    from petspect.simulate.measured import load_attenuation

    other = load_attenuation(ct_dir)
    with pytest.raises(GeometryError, match="--mu-same-frame"):
        spect_acquisition(proj, window=208, mu=other)
    vouched = spect_acquisition(proj, window=208, mu=other, mu_same_frame=True, scatter="none")
    assert float(vouched.mu_per_mm.max()) == pytest.approx(float(hu_to_mu_per_mm(torch.tensor(0.0), 208.0)), rel=0.02)
    far = load_attenuation(folder)
    far = far.with_data(far.data)
    far.origin_mm = (far.origin_mm[0], far.origin_mm[1], far.origin_mm[2] + 5000.0)
    with pytest.raises(GeometryError, match="does not overlap"):
        spect_acquisition(proj, window=208, mu=far)


def test_two_beds_are_joined(tmp_path):
    """Two beds 4 rows apart (2 rows overlap): one image over 10 rows, the cylinder's level kept across the seam."""
    frame, study_uid = generate_uid(), generate_uid()
    folder = tmp_path / "beds"
    folder.mkdir()
    for i, z in enumerate((IPP[2], IPP[2] - 4 * PIX)):
        ds = _fill(_nm(frame, z_mm=z, study_uid=study_uid), tmp_path)
        ds.AcquisitionDate, ds.AcquisitionTime = "20240102", f"10{20 * i:02d}00"  # second bed 20 min later
        rp, code = Dataset(), Dataset()
        code.CodeMeaning = "^177^Lutetium"
        rp.RadionuclideCodeSequence = Sequence([code])
        ds.RadiopharmaceuticalInformationSequence = Sequence([rp])
        ds.save_as(folder / f"bed{i}.dcm", enforce_file_format=True)
    beds = read_nm_beds(folder)
    assert [b.meta["image_position_patient"][2] for b in beds] == [IPP[2], IPP[2] - 4 * PIX]
    r = CliRunner().invoke(app, ["recon", str(folder), "--window", "208", "--iterations", "4", "--subsets", "4",
                                 "--scatter", "none", "--out", str(tmp_path / "joined.nii.gz")])
    assert r.exit_code == 0 and "2 bed position(s)" in r.output, r.output
    factor = 2.0 ** (1200.0 / (6.647 * 86400.0))  # Lu-177, 20 min: 1.00145
    assert f"factors 1.0000, {factor:.4f}" in r.output
    r = CliRunner().invoke(app, ["convert", str(folder), str(tmp_path / "beds.hs")])
    assert r.exit_code == 0 and "bed 2" in r.output, r.output
    from petspect.io.interfile import read_interfile_projections

    for k, bed in enumerate(beds, start=1):
        hs = read_interfile_projections(tmp_path / f"beds_bed{k}.hs")
        assert torch.equal(hs.counts, bed.counts) and hs.meta["image_position_patient"] == bed.meta[
            "image_position_patient"]
    img = load(tmp_path / "joined.nii.gz")
    assert img.shape == (ROWS + 4, COLS, COLS)
    assert img.origin_mm[2] == pytest.approx(IPP[2] - 4 * PIX - (ROWS - 1) * PIX)
    per_slice = torch.stack([img.data[k][_phantom((1, COLS, COLS))[0]].mean() for k in range(ROWS + 4)])
    middle = per_slice[1:-1]
    assert float(middle.max() / middle.min()) < 1.25  # no step or hole at the seam


def test_info_and_convert_of_the_study_folder(study, tmp_path):
    """`petspect info` keeps the two Lu177_EM windows apart; `petspect convert` writes the NM projections of the
    folder (next to the CT slices) to Interfile, which reconstructs with the header's collimator."""
    folder, _ = study
    runner = CliRunner()
    r = runner.invoke(app, ["info", str(folder)])
    assert r.exit_code == 0 and "1:Lu177_EM#1" in r.output and "2:Lu177_EM#2" in r.output, r.output
    r = runner.invoke(app, ["convert", str(folder), str(tmp_path / "nm.hs")])
    assert r.exit_code == 0, r.output
    back = read_nm_projections(folder)
    from petspect.io.interfile import read_interfile_projections

    hs = read_interfile_projections(tmp_path / "nm.hs")
    assert torch.equal(hs.counts, back.counts) and hs.meta["collimator"] == "MEGP"
    acq = spect_acquisition(hs, window=208, scatter="none")
    assert acq.system.collimator.name == "ge-megp"


def test_dicom_output_keeps_the_study_and_is_honest_about_units(study, tmp_path):
    """A reconstruction written as DICOM keeps the source's patient, study and frame of reference (so it fuses
    with the CT), gets a new series, references the NM instance, lies at the header's position, and is BQML
    only when calibrated (else PROPCNTS: proportional to counts)."""
    import pydicom

    folder, grid = study
    nm = pydicom.dcmread(folder / "im0000.dcm", stop_before_pixels=True)
    runner = CliRunner()
    base = ["recon", str(folder), "--window", "208", "--iterations", "1", "--subsets", "4", "--scatter", "none"]
    r = runner.invoke(app, [*base, "--out", str(tmp_path / "au")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*base, "--sensitivity-cps-per-mbq", str(S), "--out", str(tmp_path / "bq")])
    assert r.exit_code == 0, r.output
    for name, units in (("au", "PROPCNTS"), ("bq", "BQML")):
        files = sorted((tmp_path / name).glob("*.dcm"))
        ds = pydicom.dcmread(files[0], stop_before_pixels=True)
        assert ds.Units == units and ds.PatientName == nm.PatientName and ds.PatientID == nm.PatientID
        assert ds.StudyInstanceUID == nm.StudyInstanceUID and ds.FrameOfReferenceUID == nm.FrameOfReferenceUID
        assert ds.SeriesInstanceUID != nm.SeriesInstanceUID
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == nm.SOPInstanceUID
        back = load(tmp_path / name)
        np.testing.assert_allclose(back.origin_mm, grid.origin_mm, atol=1e-3)
    assert load(tmp_path / "au").unit == "a.u." and load(tmp_path / "bq").unit == "Bq/mL"
    r = runner.invoke(app, [*base, "--anonymize", "--out", str(tmp_path / "anon")])
    assert r.exit_code == 0, r.output
    anon = pydicom.dcmread(sorted((tmp_path / "anon").glob("*.dcm"))[0], stop_before_pixels=True)
    assert anon.PatientName != nm.PatientName and anon.PatientID != nm.PatientID
    assert anon.StudyInstanceUID != nm.StudyInstanceUID
