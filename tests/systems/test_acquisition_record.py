"""systems.acquisition / systems.records: the typed record, its folder format (v2 levels, v1 still read), errors."""

from __future__ import annotations

import json

import pytest
import torch

from petspect.errors import DataNotFoundError, FormatError, InputError
from petspect.geometry.spect import get_spect_system
from petspect.simulate.acquisition import simulate_acquisition
from petspect.systems.acquisition import (ACQUISITION_JSON, AcquisitionData, Calibration, Level, acquisition_document,
                                          list_levels, load_acquisition, save_acquisition, spect_window_terms,
                                          system_model)
from petspect.systems.records import ImageGridSpec, PetSystemSpec, SpectSystemSpec, system_spec_from_dict
from petspect.volume import Volume


@pytest.fixture(scope="module")
def pet():
    c = (torch.arange(16) - 7.5) * 4.0
    disc = ((c[:, None] ** 2 + c[None, :] ** 2) < 25 ** 2).float()[None]
    act = Volume.centered(1000.0 * disc, (4.0, 4.0, 4.0), unit="Bq/mL", modality="PT")
    mu = act.with_data(disc * 0.0096, unit="1/mm", modality=None)
    return simulate_acquisition(act, "small-animal", mu=mu, single_ring=True, view_mashing=2, n_radial=90,
                                n_counts=1e5, normalisation=True, randoms_fraction=0.1, seed=1)


def test_records_round_trip_through_json(pet):
    d = json.loads(json.dumps(pet.system.to_dict()))
    assert system_spec_from_dict(d) == pet.system and isinstance(pet.system, PetSystemSpec)
    assert ImageGridSpec.from_dict(json.loads(json.dumps(pet.grid.to_dict()))) == pet.grid
    assert Calibration.from_dict(json.loads(json.dumps(pet.calibration.to_dict()))) == pet.calibration
    spect = get_spect_system("spect-lehr")
    s = SpectSystemSpec("spect-lehr", "Tc-99m", spect.collimator, [0.0, 90.0], [150.0, 150.0], True, (4, 8), (4.0, 4.0),
                        spect.sensitivity_cps_per_mbq, spect.photopeak)
    assert system_spec_from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_bad_records_are_refused(pet):
    with pytest.raises(FormatError, match="modality"):
        system_spec_from_dict({"modality": "CT"})
    bad = pet.system.to_dict()
    bad["scanner"]["n_ringz"] = 3
    with pytest.raises(FormatError, match="unknown keys"):
        system_spec_from_dict(bad)
    with pytest.raises(InputError):
        Calibration(time_scale_s=0.0)
    with pytest.raises(InputError):
        ImageGridSpec((4, 0, 4), (1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="additive shape"):
        AcquisitionData(pet.prompts, pet.system, pet.grid, pet.calibration, additive=torch.zeros(3))


def test_levels_share_the_system_terms(pet, tmp_path):
    """A folder with levels: level L reads its prompts, the shared additive times its scale, its time scale;
    the calibrated model of a level is the full model times the count fraction."""
    folder = save_acquisition(pet, tmp_path / "acq")
    half = torch.poisson(pet.prompts * 0.5, generator=torch.Generator().manual_seed(0))
    import numpy as np

    np.save(folder / "prompts_d050.npy", half.numpy())
    doc = json.loads((folder / ACQUISITION_JSON).read_text())
    lv = Level("d050", "prompts_d050.npy", pet.time_scale_s * 0.5, 0.5, "additive.npy", 0.5)
    doc = acquisition_document(pet, doc["files"], levels=[lv])
    (folder / ACQUISITION_JSON).write_text(json.dumps(doc))
    assert list_levels(folder) == ["d050"]
    low = load_acquisition(folder, level="d050")
    assert torch.equal(low.prompts, half) and low.calibration.count_fraction == 0.5
    torch.testing.assert_close(low.additive, 0.5 * pet.additive)
    x = torch.rand(pet.grid.shape)
    torch.testing.assert_close(system_model(low).operator(x), 0.5 * system_model(pet).operator(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(FormatError, match="no level 'd010'"):
        load_acquisition(folder, level="d010")


def test_version_1_folders_still_read(pet, tmp_path):
    folder = save_acquisition(pet, tmp_path / "v1")
    doc = json.loads((folder / ACQUISITION_JSON).read_text())
    files = doc["files"]
    files["multiplicative"] = {"attenuation": files.pop("attenuation"), "normalisation": files.pop("normalisation")}
    doc["version"] = 1
    (folder / ACQUISITION_JSON).write_text(json.dumps(doc))
    back = load_acquisition(folder)
    assert torch.equal(back.attenuation, pet.attenuation) and torch.equal(back.normalisation, pet.normalisation)


def test_damaged_folders_give_clear_errors(pet, tmp_path):
    folder = save_acquisition(pet, tmp_path / "acq")
    (folder / "attenuation.npy").unlink()
    with pytest.raises(DataNotFoundError, match="missing"):
        load_acquisition(folder)
    (folder / ACQUISITION_JSON).write_text("{not json")
    with pytest.raises(FormatError, match="invalid JSON"):
        load_acquisition(folder)
    (folder / ACQUISITION_JSON).write_text(json.dumps({"format": "petspect-acquisition", "version": 99}))
    with pytest.raises(FormatError, match="version"):
        load_acquisition(folder)


def test_spect_windows_give_photopeak_and_tew():
    """TEW from the stored windows: (C_low/W_low + C_up/W_up) W_peak / 2 (REFERENCE.md), here unsmoothed."""
    s = get_spect_system("spect-lehr")
    spec = SpectSystemSpec("spect-lehr", "Tc-99m", s.collimator, [0.0, 180.0], [150.0, 150.0], True, (2, 3), (4.0, 4.0),
                           s.sensitivity_cps_per_mbq, s.photopeak)
    windows = list(s.energy_windows)
    counts = torch.stack([torch.full((2, 2, 3), 10.0 * (i + 1)) for i in range(len(windows))])
    peak, add = spect_window_terms(counts, spec, windows, {"method": "tew", "smooth_fwhm_mm": 0})
    w = {x.name: x for x in windows}
    i = {x.name: k for k, x in enumerate(windows)}
    expected = (10.0 * (i["scatter_low"] + 1) / w["scatter_low"].width_kev
                + 10.0 * (i["scatter_up"] + 1) / w["scatter_up"].width_kev) * s.photopeak.width_kev / 2
    assert torch.equal(peak, counts[i[s.photopeak.name]])
    torch.testing.assert_close(add, torch.full((2, 2, 3), expected, dtype=add.dtype))
    assert spect_window_terms(counts, spec, windows, None)[1] is None
