"""Preset sinogram compression, data size and time estimate of a PET job, and their CLI announcement."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.errors import InputError
from petspect.geometry.pet import PRESET_COMPRESSION, ImageGrid, PetScanner, default_compression, get_pet_scanner
from petspect.geometry.sinogram import SinogramDefinition
from petspect.io import save
from petspect.projectors.pet_estimate import describe_size, estimate_sinogram_projection, format_seconds
from petspect.volume import Volume


@pytest.mark.parametrize("name, planes, views, radial", [
    ("wholebody", 815, 95, 520),  # Biograph Vision span 19 / MRD 79: 815 sinograms (vendor count), 520 bins
    ("brain", 2209, 288, 256),  # HRRT span 9 / MRD 67: 2209 sinograms of 256 x 288 (de Jong et al 2007)
    ("small-animal", 4319, 160, 128),  # Inveon span 3 / MRD 79: 4319 sinograms of 128 x 160
])
def test_preset_default_compression_gives_the_vendor_sinogram(name, planes, views, radial):
    """The michelogram of each preset at its default span / MRD has the vendor's number of sinograms."""
    sd = SinogramDefinition.preset_default(get_pet_scanner(name))
    assert sd.shape() == (planes, views, radial)
    assert sd.n_lors == planes * views * radial
    assert PRESET_COMPRESSION[name].source  # every default says where it comes from


def test_preset_default_overrides_and_2d():
    sc = get_pet_scanner("wholebody")
    sd = SinogramDefinition.preset_default(sc, span=21, view_mashing=None)
    assert (sd.span, sd.view_mashing, sd.max_ring_diff) == (21, 4, 79)
    sd2 = SinogramDefinition.preset_default(get_pet_scanner("wholebody", single_ring=True))
    assert sd2.shape() == (1, 95, 520) and sd2.span == 1 and default_compression("wholebody-2d").max_ring_diff == 0
    with pytest.raises(InputError):
        SinogramDefinition.preset_default(sc, spam=3)
    custom = PetScanner("custom", ring_radius_mm=100.0, crystals_per_ring=64, n_rings=2, crystal_size_mm=(4, 4, 10),
                        ring_spacing_mm=4.0, fov_diameter_mm=150.0)
    with pytest.raises(InputError):
        default_compression(custom)


def test_estimate_counts_the_sinogram():
    """Sizes are exact (4x the views: 4x the LORs) and the times positive (no timing comparison: load varies)."""
    sc = PetScanner("toy", ring_radius_mm=150.0, crystals_per_ring=128, n_rings=4, crystal_size_mm=(4, 4, 10),
                    ring_spacing_mm=4.0, fov_diameter_mm=200.0)
    grid = ImageGrid((8, 40, 40), (4.0, 4.0, 4.0))
    small = estimate_sinogram_projection(SinogramDefinition(sc, view_mashing=4), grid, n_calibration=2000)
    large = estimate_sinogram_projection(SinogramDefinition(sc, view_mashing=1), grid, n_calibration=2000)
    assert small.n_lors * 4 == large.n_lors and small.n_bins == small.n_lors
    assert 0 < small.forward_s and 0 < small.back_s and 0 < large.forward_s and 0 < large.back_s
    assert large.shape == (16, 64, 60) and small.shape == (16, 16, 60)
    assert small.job_seconds(2, 1) == pytest.approx(2 * small.forward_s + small.back_s)


def test_describe_size_and_format():
    assert describe_size((815, 95, 520, 33)) == "815 x 95 x 520 = 40.3 M LORs x 33 TOF bins = 1.33 G bins (5.31 GB as float32)"
    assert format_seconds(0.42) == "0.4 s" and format_seconds(42) == "42 s" and format_seconds(600) == "10.0 min" and format_seconds(7200) == "2.0 h"


def test_cli_project_uses_preset_compression_and_announces_the_job(tmp_path):
    """`petspect project` without --view-mashing takes the preset's mashing and prints size and time; recon too."""
    c = (torch.arange(16) - 7.5) * 4.0
    disc = ((c[:, None] ** 2 + c[None, :] ** 2) < 25 ** 2).float()[None]
    save(Volume.centered(1000.0 * disc, (4.0, 4.0, 4.0), unit="Bq/mL"), tmp_path / "act.nii.gz")
    res = CliRunner().invoke(app, ["project", str(tmp_path / "act.nii.gz"), "--system", "wholebody", "--2d",
                                   "--counts", "1e5", "--out", str(tmp_path / "d")])
    assert res.exit_code == 0, res.output
    assert "1 x 95 x 520 = 49.4 k LORs" in res.output and "estimated projection" in res.output
    doc = json.loads((tmp_path / "d" / "acquisition.json").read_text())
    assert doc["system"]["sinogram"]["view_mashing"] == 4 and doc["system"]["sinogram"]["n_radial"] == 520
    res = CliRunner().invoke(app, ["recon", str(tmp_path / "d"), "--iterations", "1", "--subsets", "5",
                                   "--out", str(tmp_path / "x.nii.gz")])
    assert res.exit_code == 0, res.output
    assert "estimated reconstruction (1 iterations)" in res.output
