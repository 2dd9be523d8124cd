"""Inputs that used to give silently wrong numbers now fail loudly, naming the file and the field (issue 14)."""

from __future__ import annotations

import gzip
import zlib

import numpy as np
import pytest
import torch

import dicom_factory as fac
from petspect.errors import FormatError, InputError, MissingTagError, PetspectError
from petspect.io import load, save
from petspect.io.suv import suv_factor
from petspect.volume import Volume


def _raw(ds, keyword, text):
    """Set an attribute to raw text as a damaged file would hold it (pydicom would refuse to encode it)."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    tag = Tag(tag_for_keyword(keyword))
    value = text.encode("latin-1")
    value += b" " * (len(value) % 2)
    ds[tag] = RawDataElement(tag, dictionary_VR(tag), len(value), value, 0, False, True)


def _pet_series(tmp_path, **edit):
    vals = np.full((3, 4, 5), 11.9 * 1000.0)
    series = fac.slice_stack(vals, **fac.pet_attrs())
    for ds in series:
        for key, value in edit.items():
            if value is None:
                delattr(ds, key)
            else:
                _raw(ds, key, value)
    return fac.write(series, tmp_path / "pet")


def test_missing_rescale_slope_of_pet_is_an_error(tmp_path):
    """PT RescaleSlope is type 1; reading it as 1 gave values 11.9x too small (the slope of this series)."""
    with pytest.raises(MissingTagError, match=r"RescaleSlope \(0028,1053\)"):
        load(_pet_series(tmp_path, RescaleSlope=None))


@pytest.mark.parametrize("slope", ["0", "nan", "inf", "-inf", "abc"])
def test_zero_or_non_finite_rescale_slope_is_an_error(tmp_path, slope):
    with pytest.raises(FormatError, match="RescaleSlope"):
        load(_pet_series(tmp_path, RescaleSlope=slope))


def test_missing_slope_of_mr_still_means_one(tmp_path):
    series = fac.slice_stack(np.full((2, 3, 3), 100.0), modality="MR")
    for ds in series:
        ds.Modality = "MR"
        del ds.RescaleSlope
        del ds.RescaleIntercept
    vol = load(fac.write(series, tmp_path / "mr"))
    assert vol.unit == "a.u." and float(vol.data.max()) > 0


@pytest.mark.parametrize("field, value", [("PatientWeight", "nan"), ("PatientWeight", "0"),
                                          ("PatientWeight", "-70")])
def test_impossible_weight_gives_no_suv(field, value):
    ds = fac.slice_stack(np.ones((1, 2, 2)), **fac.pet_attrs())[0]
    _raw(ds, field, value)
    with pytest.raises(FormatError, match=field):
        suv_factor(ds, "bw")


@pytest.mark.parametrize("field, value", [("RadionuclideTotalDose", "nan"), ("RadionuclideHalfLife", "-6586.2"),
                                          ("RadionuclideHalfLife", "0"), ("RadionuclideTotalDose", "inf")])
def test_impossible_dose_or_half_life_gives_no_suv(field, value):
    """NaN dose gave NaN factors, a negative half-life factors of 0 (exp(+large) dose), 0 a ZeroDivisionError."""
    ds = fac.slice_stack(np.ones((1, 2, 2)), **fac.pet_attrs())[0]
    _raw(ds.RadiopharmaceuticalInformationSequence[0], field, value)
    with pytest.raises(FormatError, match=field):
        suv_factor(ds, "bw")


def test_series_with_bad_suv_facts_reads_with_the_reason(tmp_path):
    vol = load(_pet_series(tmp_path, PatientWeight="nan"))
    assert vol.meta["suv_factors"]["bw"] is None and "PatientWeight" in vol.meta["suv_missing"]["bw"]
    with pytest.raises(PetspectError, match="PatientWeight"):
        load(tmp_path / "pet", suv="bw")


def test_single_valued_corrected_image_survives_a_round_trip(tmp_path):
    """CorrectedImage "DECY" alone used to come back as D\\E\\C\\Y, losing the decay-correction flag."""
    path = _pet_series(tmp_path, CorrectedImage="DECY")
    vol = load(path)
    assert vol.meta["corrected_image"] == ["DECY"]
    save(vol, tmp_path / "out")
    again = load(tmp_path / "out")
    assert again.meta["corrected_image"] == ["DECY"]
    import pydicom

    ds = pydicom.dcmread(sorted((tmp_path / "out").glob("*.dcm"))[0])
    assert list(pydicom.multival.MultiValue(str, ds.CorrectedImage)) == ["DECY"] or ds.CorrectedImage == "DECY"


def _nifti_gz(tmp_path):
    vol = Volume.centered(torch.arange(4 * 5 * 6, dtype=torch.float32).reshape(4, 5, 6), (2.0, 2.0, 2.0),
                          unit="Bq/mL", modality="PT")
    return save(vol, tmp_path / "v.nii.gz")


def test_nii_gz_crc_error_is_refused(tmp_path):
    """A flipped bit in the deflate stream used to give different voxels silently (60 of 76 flips)."""
    p = _nifti_gz(tmp_path)
    raw = bytearray(p.read_bytes())
    raw[-6] ^= 0x01  # inside the stored CRC-32: the data decompress, the check must catch it
    p.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="gzip"):
        load(p)


def test_every_single_bit_flip_of_the_stream_is_caught_or_harmless(tmp_path):
    p = _nifti_gz(tmp_path)
    good = load(p).numpy()
    raw = p.read_bytes()
    start = 10 + raw[10:].index(b"\0") + 1 if raw[3] & 0x08 else 10  # after the gzip header (and file name)
    silent = 0
    rng = np.random.default_rng(14)
    for pos in rng.integers(start, len(raw) - 8, 60):
        bad = bytearray(raw)
        bad[pos] ^= 1 << int(rng.integers(8))
        p.write_bytes(bytes(bad))
        try:
            vol = load(p)
        except PetspectError:
            continue
        silent += not np.array_equal(vol.numpy(), good)
    assert silent == 0


def test_uint64_values_that_would_wrap_are_refused(tmp_path):
    import nibabel as nib

    arr = np.array([[[1, 2**63 + 5]]], dtype=np.uint64)
    nib.save(nib.Nifti1Image(arr, np.eye(4), dtype=np.uint64), tmp_path / "u.nii")
    with pytest.raises(FormatError, match="wrap"):
        load(tmp_path / "u.nii")
    nib.save(nib.Nifti1Image(np.array([[[1, 7]]], dtype=np.uint64), np.eye(4), dtype=np.uint64), tmp_path / "ok.nii")
    assert load(tmp_path / "ok.nii").data.max() == 7


def test_unknown_nifti_datatype_code_names_the_field(tmp_path):
    p = save(Volume.centered(torch.ones(2, 2, 2), (1.0, 1.0, 1.0)), tmp_path / "v.nii")
    raw = bytearray(p.read_bytes())
    raw[70:72] = (999).to_bytes(2, "little")  # datatype
    p.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="datatype|data type"):
        load(p)


def test_interfile_data_file_outside_the_header_folder_is_refused(tmp_path):
    vol = Volume.centered(torch.ones(2, 3, 4), (1.0, 1.0, 1.0), unit="Bq/mL", modality="PT")
    save(vol, tmp_path / "a" / "img.hv")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x01" * 24 * 4)
    hdr = tmp_path / "a" / "img.hv"
    hdr.write_text(hdr.read_text().replace("name of data file := img.v", "name of data file := ../secret.bin"))
    with pytest.raises(FormatError, match="outside the header's folder"):
        load(hdr)
    assert load(hdr, allow_outside_data=True).shape == (2, 3, 4)  # explicitly allowed


@pytest.mark.parametrize("key, value", [("!matrix size [1]", "abc"), ("scaling factor (mm/pixel) [1]", "nan"),
                                        ("!number of bytes per pixel", "0x10"), ("image scaling factor[1]", "inf")])
def test_bad_interfile_numbers_name_the_key(tmp_path, key, value):
    vol = Volume.centered(torch.ones(2, 3, 4), (1.0, 1.0, 1.0), unit="Bq/mL", modality="PT")
    hdr = save(vol, tmp_path / "img.hv")
    lines = [ln for ln in hdr.read_text().splitlines() if not ln.lower().startswith(key.lower())]
    lines.insert(2, f"{key} := {value}")
    hdr.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError) as err:
        load(hdr)
    assert key.lstrip("!") in str(err.value)


def test_damaged_dicom_numbers_name_the_attribute(tmp_path):
    path = _pet_series(tmp_path, PixelSpacing="2.0\\x")
    with pytest.raises(FormatError, match="PixelSpacing"):
        load(path)


def test_unknown_transfer_syntax_is_a_clean_error(tmp_path):
    path = _pet_series(tmp_path)
    import pydicom

    for f in path.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.file_meta.TransferSyntaxUID = "1.2.3.4.5.6"
        ds.save_as(f, enforce_file_format=False)
    with pytest.raises(FormatError, match="TransferSyntaxUID"):
        load(path)


def test_damaged_model_folder_is_a_clean_error(tmp_path):
    from petspect.testing import samples
    from petspect.train import load_model

    m = samples.model_folder(tmp_path)
    (m / "model.pt").write_bytes(b"\x80\x04garbage")
    with pytest.raises(FormatError, match="model.pt"):
        load_model(m)
    m2 = samples.model_folder(tmp_path / "b")
    cfg = (m2 / "config.json").read_text().replace('"channels": [\n      4\n    ]', '"channels": [\n      400000\n    ]')
    (m2 / "config.json").write_text(cfg)
    with pytest.raises(FormatError, match="inconsistent"):  # checked on the meta device: nothing allocated
        load_model(m2)


def test_acquisition_with_nan_or_all_zero_factors_is_refused(tmp_path):
    import dataclasses

    from petspect.simulate.acquisition import load_acquisition, reconstruct_acquisition, simulate_acquisition
    from petspect.testing import samples

    acq = samples.acquisition_folder(tmp_path)
    data = load_acquisition(acq)
    data.prompts[0, 0, 0] = float("nan")
    for algo in ("fbp", "osem"):  # FBP used to accept what the iterative algorithms refused
        with pytest.raises(InputError, match="NaN"):
            reconstruct_acquisition(data, algo, n_iter=1, n_subsets=1)
    np.save(acq / "prompts.npy", np.full(np.load(acq / "prompts.npy").shape, np.nan, dtype=np.float32))
    with pytest.raises(InputError, match="NaN"):
        load_acquisition(acq)
    # PET attenuation factors that are all zero gave an all-zero image without a word
    act = Volume.centered(torch.ones(1, 16, 16) * 1000.0, (2.0, 2.0, 2.0), unit="Bq/mL", modality="PT")
    mu = act.with_data(torch.full((1, 16, 16), 0.0096), unit="1/mm", modality="CT")
    pet = simulate_acquisition(act, "small-animal", mu=mu, n_counts=1e4, seed=0, single_ring=True)
    bad = dataclasses.replace(pet, attenuation=torch.zeros_like(pet.attenuation))
    with pytest.raises(InputError, match="all zero"):
        reconstruct_acquisition(bad, "mlem", n_iter=1)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_dicom_writer_refuses_non_finite_voxels(tmp_path, bad):
    """NaN used to be written as stored 0 without a word; inf raised a raw ValueError."""
    data = torch.full((2, 3, 3), 100.0)
    data[0, 1, 1] = bad
    with pytest.raises(InputError, match="NaN or infinite"):
        save(Volume.centered(data, (1.0, 1.0, 1.0), unit="Bq/mL", modality="PT"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("factor", [float("nan"), -1.0, [1.0, 2.0]])
def test_recorded_suv_factor_must_be_usable(tmp_path, factor):
    """A NaN factor carried in a NIfTI's metadata used to give an all-NaN SUV image."""
    vol = Volume.centered(torch.ones(3, 2, 2), (1.0, 1.0, 1.0), unit="Bq/mL", modality="PT",
                          meta={"suv_factors": {"bw": factor}})
    save(vol, tmp_path / "v.nii.gz")
    with pytest.raises(FormatError, match="SUV bw"):
        load(tmp_path / "v.nii.gz", suv="bw")
