"""``petspect segment --model <organ model> --input CT``: per-organ label map, table, DICOM SEG and RTSTRUCT that
read back to the same voxels; the model applied at its training voxel size on a CT of another grid."""

from __future__ import annotations

import csv
import json

import numpy as np
import pydicom
import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.errors import InputError
from petspect.io import load
from petspect.io.dicom_write import write_dicom_series
from petspect.segmentation.metrics import dice
from petspect.segmentation.networks import SegNetSpec, save_segmenter
from petspect.segmentation.organs import segment_organs, train_organ_segmenter
from petspect.segmentation.train import Case, TrainSettings
from petspect.volume import Volume

runner = CliRunner()
IDS = {"background": 0, "soft_tissue": 1, "lung": 4, "liver": 9, "kidney_cortex": 11}
ORGANS = ("liver", "kidneys", "lungs")


def _anatomy(i: int, shape=(8, 24, 24), vox: float = 1.0) -> np.ndarray:
    """Label map of a toy torso: lungs above, liver on the right, a kidney on the left (``vox``: 6 mm units)."""
    z, y, x = (np.indices(shape).astype(float) + 0.5) * vox - 0.5
    body = ((y - 11.5) / 10) ** 2 + ((x - 11.5) / 11) ** 2 <= 1
    lab = np.where(body, 1, 0).astype(np.int16)
    lab[body & (z >= 5) & (np.abs(x - 11.5) > 3)] = 4
    lab[body & (z < 5) & (((y - 11.5) / 5) ** 2 + ((x - 7.5 - i % 2) / 4) ** 2 <= 1)] = 9
    lab[body & (z < 4) & (((y - 9.5) / 2.5) ** 2 + ((x - 17.5) / 2.5) ** 2 <= 1)] = 11
    return lab


def _ct(lab: np.ndarray, rng) -> np.ndarray:
    ct = np.select([lab == 0, lab == 4, lab == 9, lab == 11], [-1000.0, -800.0, 60.0, 150.0], 20.0)
    return (ct + rng.normal(0, 5, ct.shape) * (lab > 0)).astype(np.float32)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    rng = np.random.default_rng(0)
    cases = []
    for i in range(5):
        lab = _anatomy(i)
        cases.append(Case(f"s{i}", np.ones(lab.shape), _ct(lab, rng), np.zeros(lab.shape, np.int32), (6.0,) * 3, lab))
    spec = SegNetSpec(in_channels=2, inputs="ct_windows", filters=(8, 16, 32), z_strides=(1, 2), patch_zyx=(8, 24, 24),
                      classes=("background", *ORGANS))
    seg = train_organ_segmenter(cases[:4], cases[4:], IDS, spec, TrainSettings(epochs=15, patches_per_case=2,
                                                                               batch_size=2, lr=1e-2))
    folder = save_segmenter(tmp_path_factory.mktemp("m") / "model_organs", seg)
    return seg, folder


def test_whole_volume_training_learns_the_toy_organs(model):
    seg, _ = model
    rec = seg.record
    assert rec["whole_volume"] and rec["flips"] is False and rec["spacing_mm"] == [6.0, 6.0, 6.0]
    assert set(rec["val_organ_dice"]) == set(ORGANS) and len(rec["val_dice"]) == 15
    assert max(rec["val_dice"]) > 0.8, rec["val_dice"]  # a real fit, not a contract only


def test_segment_cli_writes_organ_masks_seg_and_rtstruct_for_a_dicom_ct(model, tmp_path):
    seg, folder = model
    lab = _anatomy(1)
    ct = Volume.centered(torch.from_numpy(_ct(lab, np.random.default_rng(7))), (6.0, 6.0, 6.0), unit="HU",
                         modality="CT")
    ct_dir = tmp_path / "ct"
    write_dicom_series(ct, ct_dir)
    out = tmp_path / "o"
    r = runner.invoke(app, ["segment", "--model", str(folder), "--input", str(ct_dir), "--out", str(out)])
    assert r.exit_code == 0, r.output
    ct_read = load(ct_dir)
    organs_vol = load(out / "organs.nii.gz")
    assert organs_vol.same_grid(ct_read)
    labels = organs_vol.numpy().astype(int)
    truth = {"liver": lab == 9, "kidneys": lab == 11, "lungs": lab == 4}
    for k, o in enumerate(ORGANS, start=1):
        assert dice(labels == k, truth[o]) > 0.8, o
    rows = {r["organ"]: r for r in csv.DictReader((out / "organs.csv").open())}
    assert list(rows) == list(ORGANS)
    assert int(rows["liver"]["voxels"]) == int((labels == 1).sum())
    assert float(rows["liver"]["volume_ml"]) == pytest.approx((labels == 1).sum() * 0.216, rel=1e-3)
    assert float(rows["lungs"]["mean_hu"]) < -700
    ds = pydicom.dcmread(out / "seg.dcm")
    src = pydicom.dcmread(next(p for p in ct_dir.iterdir() if p.suffix == ".dcm"), stop_before_pixels=True)
    assert ds.Modality == "SEG" and ds.FrameOfReferenceUID == src.FrameOfReferenceUID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == src.SeriesInstanceUID
    assert [s.SegmentLabel for s in ds.SegmentSequence] == list(ORGANS)
    from petspect.io.dicom_seg import read_dicom_seg
    from petspect.io.rtstruct import read_rtstruct

    back = read_dicom_seg(out / "seg.dcm", ct_read)
    rt = read_rtstruct(out / "rtstruct.dcm", ct_read)
    for k, o in enumerate(ORGANS, start=1):
        assert np.array_equal(back[o].numpy().astype(bool), labels == k), o
        assert np.array_equal(rt[o].numpy().astype(bool), labels == k), o
    doc = json.loads((out / "segmentation.json").read_text())
    assert doc["task"] == "organs" and doc["found"] == list(ORGANS)


def test_a_ct_on_a_finer_grid_is_segmented_at_the_model_voxel_size(model):
    seg, _ = model
    lab3 = _anatomy(0, shape=(16, 48, 48), vox=0.5)  # the same anatomy in 3 mm voxels
    ct3 = Volume.centered(torch.from_numpy(_ct(lab3, np.random.default_rng(3))), (3.0, 3.0, 3.0), unit="HU")
    out = segment_organs(seg, ct3)
    assert out.shape == ct3.shape and out.dtype == np.int16
    assert dice(out == 1, lab3 == 9) > 0.75 and dice(out == 3, lab3 == 4) > 0.75
    raw = seg.labels(ct3.numpy())  # the network run on 3 mm voxels as if they were 6 mm: much worse
    assert dice(raw == 1, lab3 == 9) < dice(out == 1, lab3 == 9)
    with pytest.raises(InputError, match="HU"):
        segment_organs(seg, ct3.with_data(ct3.data, unit="Bq/mL"))
