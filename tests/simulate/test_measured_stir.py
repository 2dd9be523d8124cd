"""STIR Interfile SPECT projections: STIR's orientation conventions against the DICOM path, headers without
energy-window keys, ``radii`` lists (non-circular orbits), the frame duration key, and unsupported geometries.

The orientation reference: STIR's ``SPECT_dicom_to_interfile`` (STIR src/utilities/SPECT_dicom_to_interfile.cxx)
writes DICOM's StartAngle as ``start angle``, RotationDirection (CC -> CCW) as ``!direction of rotation``,
the frames in DICOM order as the data, ``views x ActualFrameDuration`` as ``!image duration (sec)[1]`` and a
DICOM RadialPosition list as ``radii := {...}``. A header written by those rules from a DICOM NM file must
reconstruct as the DICOM file does (whose orientation petspect checks against PyTomography).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.errors import FormatError, InputError
from petspect.io import load
from petspect.io.interfile import read_interfile_projections
from petspect.io.nm import read_nm_projections
from petspect.projectors.spect import SpectProjector
from petspect.simulate.measured import spect_acquisition
from petspect.systems.collimators import get_collimator

sys.path.insert(0, str(Path(__file__).parents[1] / "io"))
import dicom_factory as fac  # noqa: E402

ROWS, COLS, PIX, VIEWS, T_MS = 4, 16, 4.0, 8, 25000  # VIEWS per head (two heads)
RADII = tuple(150.0 + 3.0 * k for k in range(VIEWS))  # a non-circular orbit


def _source():
    """A hot rod on the patient's left (LPS +x) and anterior (LPS -y): image (z, y, x) in the axial orientation."""
    img = torch.zeros(ROWS, COLS, COLS)
    img[:, 4:6, 11:13] = 1000.0
    return img


def _dicom(tmp: Path) -> Path:
    ds = fac.nm_tomo(n_views=VIEWS, rows=ROWS, cols=COLS, step_deg=360.0 / (2 * VIEWS), starts_deg=(30.0, 210.0),
                     direction="CC", radial=(RADII, RADII), windows=(("EM", 126.0, 154.0),))
    ds.PixelSpacing = [PIX, PIX]
    ds.RotationInformationSequence[0].ActualFrameDuration = T_MS
    fac.write([ds], tmp / "probe")
    proj = read_nm_projections(tmp / "probe")
    op = SpectProjector((ROWS, COLS, COLS), (PIX, PIX, PIX), proj.angles_deg, proj.radius_mm,
                        get_collimator("siemens-lehr").at_energy(140.0), psf=True, detector_shape=(ROWS, COLS),
                        pixel_mm=(PIX, PIX))
    frames = op(_source()).numpy()
    fac.set_pixels(ds, np.round(frames).astype(np.uint16))
    fac.write([ds], tmp / "nm")
    return tmp / "nm"


def _stir_header(tmp: Path, frames: np.ndarray, *, with_windows: bool = False, extra: str = "") -> Path:
    """A header as STIR's SPECT_dicom_to_interfile writes it for the DICOM of :func:`_dicom`."""
    (tmp / "stir.s").write_bytes(frames.astype("<f4").tobytes())
    windows = "number of energy windows :=1\nenergy window lower level[1] := 126\nenergy window upper level[1] := 154\n"
    n = 2 * VIEWS
    radii = ",".join(f"{r:g}" for r in RADII * 2)
    text = ("!INTERFILE  :=\n!imaging modality := nucmed\n!version of keys := 3.3\nname of data file := stir.s\n"
            "data offset in bytes := 0\n\n!GENERAL IMAGE DATA :=\n!type of data := Tomographic\n"
            "imagedata byte order := LITTLEENDIAN\n!number format := float\n!number of bytes per pixel := 4\n"
            "calibration factor:= -1\n\n" + (windows if with_windows else "") +
            f"!SPECT STUDY (General) :=\nnumber of dimensions := 2\nmatrix axis label [2] := axial coordinate\n"
            f"!matrix size [2] := {ROWS}\n!scaling factor (mm/pixel) [2] := {PIX}\n"
            f"matrix axis label [1] := bin coordinate\n!matrix size [1] := {COLS}\n"
            f"!scaling factor (mm/pixel) [1] := {PIX}\n!number of projections := {n}\nnumber of time frames := 1\n"
            f"!image duration (sec)[1] := {n * T_MS / 1000:g}\n!extent of rotation := 360\n"
            "!process status := acquired\n\n!SPECT STUDY (acquired data) :=\n!direction of rotation := CCW\n"
            f"start angle := 30\norbit := non-circular\nradii := {{{radii}}}\n{extra}\n!END OF INTERFILE :=")
    path = tmp / "stir_en_1_EM.hdr"
    path.write_text(text)
    return path


def test_stir_header_reads_as_its_dicom(tmp_path):
    nm = _dicom(tmp_path)
    dicom = read_nm_projections(nm)
    frames = dicom.counts.numpy()[0]
    stir = read_interfile_projections(_stir_header(tmp_path, frames))
    torch.testing.assert_close(torch.remainder(stir.angles_deg, 360.0), torch.remainder(dicom.angles_deg, 360.0))
    torch.testing.assert_close(stir.radius_mm, dicom.radius_mm)
    assert stir.frame_duration_s == pytest.approx(T_MS / 1000.0)  # image duration / projections, not 1 s
    assert stir.meta["energy_window_unknown"] is True


def test_stir_and_dicom_reconstruct_alike_with_the_source_on_the_left(tmp_path):
    nm = _dicom(tmp_path)
    hdr = _stir_header(tmp_path, read_nm_projections(nm).counts.numpy()[0])
    runner = CliRunner()
    common = ["--collimator", "siemens-lehr", "--scatter", "none", "--iterations", "4", "--subsets", "4"]
    r = runner.invoke(app, ["recon", str(nm), *common, "--out", str(tmp_path / "dicom.nii")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["recon", str(hdr), *common, "--out", str(tmp_path / "stir.nii")])
    assert r.exit_code == 2 and "--window KEV" in r.output, r.output  # no energy keys: the energy must be stated
    r = runner.invoke(app, ["recon", str(hdr), *common, "--window", "140", "--out", str(tmp_path / "stir.nii")])
    assert r.exit_code == 0, r.output
    a, b = load(tmp_path / "dicom.nii"), load(tmp_path / "stir.nii")
    torch.testing.assert_close(b.data, a.data, rtol=1e-3, atol=1e-3 * float(a.data.max()))
    hot = np.unravel_index(int(torch.argmax(a.data[1])), a.shape[1:])
    world = a.voxel_to_world(np.asarray([1, *hot], dtype=float))
    assert world[0] > 0 and world[1] < 0  # LPS: on the patient's left, anterior (where the rod is)


def test_stir_sample_without_energy_windows_but_with_an_isotope(tmp_path):
    frames = np.ones((2 * VIEWS, ROWS, COLS), dtype=np.float32)
    hdr = _stir_header(tmp_path, frames, extra="isotope name := ^99m^Technetium")
    proj = read_interfile_projections(hdr)
    assert len(proj.energy_windows) == 1 and "assumed" in proj.meta["energy_window"]
    assert proj.energy_windows[0].lower_kev < 140.5 < proj.energy_windows[0].upper_kev
    acq = spect_acquisition(proj, collimator="siemens-lehr", scatter="none")  # no scatter correction unless given
    assert acq.additive is None and acq.system.collimator.name == "siemens-lehr"
    with pytest.raises(InputError, match="TEW"):
        spect_acquisition(proj, collimator="siemens-lehr")


def test_unsupported_geometries_are_refused_by_name(tmp_path):
    frames = np.ones((2 * VIEWS, ROWS, COLS), dtype=np.float32)
    with pytest.raises(FormatError, match="pinhole"):
        read_interfile_projections(_stir_header(tmp_path, frames, extra="collimator type := pinhole"))
    with pytest.raises(FormatError, match="fan-beam"):
        read_interfile_projections(_stir_header(tmp_path, frames, extra="collimator := LEHR fan beam"))
    path = _stir_header(tmp_path, frames)
    path.write_text(path.read_text().replace("radii := {", "radii := {1,2,"))
    with pytest.raises(FormatError, match="radii"):
        read_interfile_projections(path)


def _write_stir_test_pack_header(tmp_path: Path, *, pinhole: bool) -> Path:
    """Headers with the keys of STIR's recon_test_pack/SPECT/SPECTUB/input.hs (parallel-hole, no energy window, no
    isotope, head_in supine) and PinholeSPECTUB/input.hs (Cubresa SPARK pinhole, prone), at a small size."""
    n, cols, rows = 24, 32, 4
    (tmp_path / "input.s").write_bytes(np.ones(n * rows * cols, dtype="<f4").tobytes())
    if pinhole:
        body = ("originating system := Cubresa SPARK\n!SPECT STUDY (general) :=\n!process status := Acquired\n"
                f"!matrix size [1] := {cols}\n!matrix size [2] := {rows}\n!number format := float\n"
                "!number of bytes per pixel := 4\nscaling factor (mm/pixel) [1] := 1.0\n"
                f"scaling factor (mm/pixel) [2] := 1.0\n!number of projections := {n}\n!extent of rotation := 270\n"
                "patient rotation := prone\npatient orientation := head_in\n!SPECT STUDY (acquired data) :=\n"
                "!direction of rotation := CCW\nstart angle := 180\norbit := Circular\nradius := 54.8\n")
    else:
        body = ("!number format := float\n!number of bytes per pixel := 4\n!SPECT STUDY (General) :=\n"
                "patient orientation := head_in\npatient rotation :=  supine\n"
                f"!matrix size [2] := {rows}\n!scaling factor (mm/pixel) [2] := 3.32\n!matrix size [1] := {cols}\n"
                f"!scaling factor (mm/pixel) [1] := 3.32\n!number of projections := {n}\n!extent of rotation := 360\n"
                "!process status := acquired\n!SPECT STUDY (acquired data) :=\n!direction of rotation := CW\n"
                "start angle := 180\norbit := circular\nradius := 150\n")
    path = tmp_path / "input.hs"
    path.write_text("!INTERFILE  :=\n!imaging modality := nucmed\n!version of keys := 3.3\nname of data file := input.s\n"
                    "!GENERAL IMAGE DATA :=\n!type of data := Tomographic\nimagedata byte order := LITTLEENDIAN\n"
                    + body + "!END OF INTERFILE :=\n")
    return path


def test_stir_test_pack_headers(tmp_path):
    """The SPECTUB (parallel-hole) header reconstructs, once the photopeak energy and the collimator are stated, to
    a centred object (uniform projections -> a centred disc); the pinhole header is refused by name."""
    hdr = _write_stir_test_pack_header(tmp_path, pinhole=False)
    with pytest.warns(UserWarning, match="no frame duration"):
        proj = read_interfile_projections(hdr)
    assert proj.angles_deg[0] == 0.0 and proj.angles_deg[1] == pytest.approx(15.0)  # DICOM 180 CW -> anterior, cw
    r = CliRunner().invoke(app, ["recon", str(hdr), "--window", "140", "--collimator", "siemens-lehr", "--scatter",
                                 "none", "--iterations", "3", "--subsets", "4", "--out", str(tmp_path / "r.nii")])
    assert r.exit_code == 0, r.output
    img = load(tmp_path / "r.nii").data[1]
    ys, xs = torch.meshgrid(torch.arange(img.shape[0]).double(), torch.arange(img.shape[1]).double(), indexing="ij")
    w = img.double().clamp(min=0)
    cy, cx = float((w * ys).sum() / w.sum()), float((w * xs).sum() / w.sum())
    assert abs(cy - (img.shape[0] - 1) / 2) < 0.5 and abs(cx - (img.shape[1] - 1) / 2) < 0.5
    with pytest.raises(FormatError, match="pinhole"):
        read_interfile_projections(_write_stir_test_pack_header(tmp_path, pinhole=True))
