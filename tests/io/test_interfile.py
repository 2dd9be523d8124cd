"""Interfile: exact round trips of images and SPECT projections, STIR key spelling, bad headers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petspect.errors import DataNotFoundError, FormatError, MissingTagError, OutputExistsError
from petspect.geometry.spect_data import EnergyWindow, SpectProjections
from petspect.io import load, save
from petspect.io.interfile import (parse_header, read_interfile, read_interfile_projections, write_interfile,
                                   write_interfile_projections)
from petspect.volume import Volume


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int16, torch.uint8])
def test_image_round_trip_exact(tmp_path, dtype):
    g = torch.Generator().manual_seed(3)
    data = (torch.rand((3, 4, 5), generator=g, dtype=torch.float64) * 100 - 20).to(dtype)
    vol = Volume(data, (2.0 / 3.0, 1.1, 0.7), (-12.345678901234, 0.1, 1e-7), unit="Bq/mL", modality="PT",
                 meta={"suv_factors": {"bw": 1.234e-4}})
    out = save(vol, tmp_path / "img.hv")
    assert (tmp_path / "img.v").exists()
    back = load(out)
    assert back.data.dtype == dtype and torch.equal(back.data, data)
    assert back.spacing_mm == vol.spacing_mm and back.origin_mm == vol.origin_mm
    assert back.direction == vol.direction and back.unit == "Bq/mL" and back.modality == "PT"
    assert back.meta == vol.meta


def test_image_oblique_and_stir_keys(tmp_path):
    c, s = np.cos(0.4), np.sin(0.4)
    d = np.array([[0.0, -s, c], [0.0, c, s], [1.0, 0.0, 0.0]])
    vol = Volume(torch.arange(24, dtype=torch.float32).reshape(2, 3, 4), (3.0, 2.0, 1.0), (1.0, 2.0, 3.0), d)
    write_interfile(vol, tmp_path / "o.hv")
    h = parse_header(tmp_path / "o.hv")
    assert h["matrix size[1]"] == "4" and h["matrix size[3]"] == "2"  # x fastest, as STIR
    assert h["scaling factor (mm/pixel)[1]"] == "1.0" and h["first pixel offset (mm)[3]"] == "3.0"
    assert h["number format"] == "float" and h["number of bytes per pixel"] == "4"
    text = (tmp_path / "o.hv").read_text()
    assert text.startswith("!INTERFILE :=") and "name of data file := o.v" in text
    back = read_interfile(tmp_path / "o.hv")
    np.testing.assert_array_equal(np.asarray(back.direction), np.asarray(vol.direction))
    np.testing.assert_array_equal(back.voxel_to_world((1, 2, 3)), vol.voxel_to_world((1, 2, 3)))


def test_foreign_stir_header_big_endian_scaled(tmp_path):
    """A hand-written STIR-style header: big-endian int16, scale factor, offset, no origin keys."""
    raw = np.arange(2 * 3 * 4, dtype=">i2").reshape(2, 3, 4)
    (tmp_path / "d.v").write_bytes(b"\0" * 8 + raw.tobytes())
    (tmp_path / "d.hv").write_text(
        "!INTERFILE  :=\nname of data file := d.v\n!GENERAL DATA :=\nimagedata byte order := BIGENDIAN\n"
        "!number format := signed integer\n!number of bytes per pixel := 2\n!matrix size [1] := 4\n"
        "!matrix size [2] := 3\n!matrix size [3] := 2\nscaling factor (mm/pixel) [1] := 2\n"
        "scaling factor (mm/pixel) [2] := 2\nscaling factor (mm/pixel) [3] := 5 ; comment\n"
        "data offset in bytes[1] := 8\nimage scaling factor[1] := 0.5\n!END OF INTERFILE :=\n")
    vol = load(tmp_path / "d.hv")
    np.testing.assert_array_equal(vol.numpy(), raw.astype(np.float32) * 0.5)
    assert vol.spacing_mm == (5.0, 2.0, 2.0)
    assert vol.origin_mm == (-3.0, -2.0, 0.0)  # STIR default: x, y centred, first slice at 0


@pytest.mark.parametrize("keys", ["patient orientation := feet_in\n", "patient rotation := prone\n"])
def test_foreign_header_not_head_in_supine_is_refused(tmp_path, keys):
    """A feet-first or prone image would be read with flipped axes: it is refused with the keys named."""
    (tmp_path / "d.v").write_bytes(np.zeros(8, dtype="<f4").tobytes())
    (tmp_path / "d.hv").write_text(
        "!INTERFILE  :=\nname of data file := d.v\n!number format := float\n!number of bytes per pixel := 4\n"
        "!matrix size [1] := 2\n!matrix size [2] := 2\n!matrix size [3] := 2\n" + keys + "!END OF INTERFILE :=\n")
    with pytest.raises(FormatError, match="head_in supine"):
        load(tmp_path / "d.hv")


def _projections(dtype=torch.float32, radius=None):
    g = torch.Generator().manual_seed(5)
    counts = torch.poisson(torch.full((2, 6, 3, 4), 7.0, dtype=torch.float64), generator=g).to(dtype)
    angles = 180.0 - 60.0 * torch.arange(6, dtype=torch.float64) + 1e-9
    return SpectProjections(counts=counts, angles_deg=angles,
                            radius_mm=radius if radius is not None else torch.tensor([250.5]),
                            pixel_spacing_mm=(4.7952, 4.7951),
                            energy_windows=[EnergyWindow("peak", 126.0, 154.0), EnergyWindow("lower", 110.0, 126.0)],
                            frame_duration_s=15.5, photopeak_window=0, nuclide="Tc-99m", meta={"collimator": "LEHR"})


@pytest.mark.parametrize("non_circular", [False, True])
def test_projection_round_trip_exact(tmp_path, non_circular):
    radius = torch.linspace(200, 260.123, 6, dtype=torch.float64) if non_circular else None
    proj = _projections(radius=radius)
    write_interfile_projections(proj, tmp_path / "p.hs")
    back = read_interfile_projections(tmp_path / "p.hs")
    assert torch.equal(back.counts, proj.counts)
    assert torch.equal(back.angles_deg, proj.angles_deg) and torch.equal(back.radius_mm, proj.radius_mm)
    assert back.pixel_spacing_mm == proj.pixel_spacing_mm and back.energy_windows == proj.energy_windows
    assert back.frame_duration_s == 15.5 and back.nuclide == "Tc-99m" and back.meta == {"collimator": "LEHR"}
    h = parse_header(tmp_path / "p.hs")
    assert h["imaging modality"] == "nucmed" and h["number of projections"] == "6"
    # STIR's angles follow DICOM: petspect's 180, 120, ... (decreasing) are DICOM's 0, 60, ... (CCW)
    assert h["direction of rotation"] == "CCW" and h["extent of rotation"] == "360.0"
    assert float(h["start angle"]) % 360.0 == pytest.approx(360.0, abs=1e-6)  # 180 - (180 + 1e-9)
    assert float(h["image duration (sec)[1]"]) == pytest.approx(15.5 * 6)
    # what STIR reads (without petspect's exact keys) gives the same views, radii and time per view
    text = (tmp_path / "p.hs").read_text().splitlines()
    (tmp_path / "stir.hs").write_text("\n".join(ln for ln in text if not ln.startswith(("petspect angles",
                                                                                      "time per projection"))))
    (tmp_path / "stir.s").write_bytes((tmp_path / "p.s").read_bytes())
    stir = read_interfile_projections(tmp_path / "stir.hs")
    torch.testing.assert_close(torch.remainder(stir.angles_deg, 360.0), torch.remainder(proj.angles_deg, 360.0),
                               atol=1e-6, rtol=0)
    assert torch.equal(stir.radius_mm, proj.radius_mm) and stir.frame_duration_s == pytest.approx(15.5)
    assert h["orbit"] == ("Non-circular" if non_circular else "Circular")
    with pytest.raises(FormatError, match="read_interfile_projections"):
        load(tmp_path / "p.hs")


def test_stir_sample_projection_header(tmp_path):
    """STIR's examples/samples/SPECT_Interfile_header.hs keys (with one energy window added):
    angles follow start angle 180, CW, extent 360 over the projections."""
    (tmp_path / "s.s").write_bytes(np.ones(4 * 2 * 3, dtype="<f4").tobytes())
    (tmp_path / "s.hs").write_text(
        "!INTERFILE  :=\n!imaging modality := nucmed\nname of data file := s.s\n!version of keys := 3.3\n"
        "imagedata byte order := LITTLEENDIAN\nenergy window lower level[1]:=120\nenergy window upper level[1]:=160\n"
        "!SPECT STUDY (General) :=\n!number format := float\n!number of bytes per pixel := 4\n"
        "!number of projections := 4\n!extent of rotation := 360\n!SPECT STUDY (acquired data):=\n"
        "!direction of rotation := CW\nstart angle := 180\norbit := Circular\nRadius := 150\n"
        "!matrix size [1] := 3\n!scaling factor (mm/pixel) [1] := 3.32\n!matrix size [2] := 2\n"
        "!scaling factor (mm/pixel) [2] := 6.64\n!END OF INTERFILE :=\n")
    with pytest.warns(UserWarning, match="no frame duration"):
        proj = read_interfile_projections(tmp_path / "s.hs")
    assert proj.counts.shape == (1, 4, 2, 3)
    # STIR's angles are DICOM's (STIR's SPECT_dicom_to_interfile copies StartAngle and RotationDirection):
    # DICOM 180, 90, 0, -90 (CW) are petspect's 180 - those: 0 (anterior), 90, 180, 270
    assert proj.angles_deg.tolist() == [0.0, 90.0, 180.0, 270.0]
    assert proj.radius_mm.tolist() == [150.0] * 4 and proj.pixel_spacing_mm == (6.64, 3.32)


def test_bad_headers(tmp_path):
    with pytest.raises(DataNotFoundError):
        load(tmp_path / "none.hv")
    (tmp_path / "x.hv").write_text("hello := world\n")
    with pytest.raises(FormatError, match="INTERFILE"):
        load(tmp_path / "x.hv")
    (tmp_path / "m.hv").write_text("!INTERFILE :=\nname of data file := m.v\n!number format := float\n"
                                   "!number of bytes per pixel := 4\n!matrix size [1] := 2\n")
    with pytest.raises(MissingTagError, match=r"matrix size \[2\]"):
        load(tmp_path / "m.hv")
    vol = Volume(torch.zeros((2, 2, 2)))
    write_interfile(vol, tmp_path / "t.hv")
    (tmp_path / "t.v").write_bytes(b"\0" * 10)
    with pytest.raises(FormatError, match="needs 32"):
        load(tmp_path / "t.hv")
    with pytest.raises(OutputExistsError):
        write_interfile(vol, tmp_path / "t.hv")
    (tmp_path / "t.v").unlink()
    with pytest.raises(FormatError, match="does not exist"):
        load(tmp_path / "t.hv")
