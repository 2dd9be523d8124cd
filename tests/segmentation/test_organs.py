"""Organ segmentation on CT: organ groups, class maps, per-organ Dice, and a training run's contract."""

from __future__ import annotations

import math

import numpy as np
import pytest

from petspect.errors import InputError
from petspect.segmentation.networks import SegNetSpec
from petspect.segmentation.organs import organ_dice, organ_target, organs_present, train_organ_segmenter
from petspect.segmentation.train import Case, TrainSettings

IDS = {"background": 0, "soft_tissue": 1, "lung": 4, "liver": 9, "spleen": 10, "kidney_cortex": 11,
       "kidney_medulla": 12}


def _case(i: int, rng) -> Case:
    z, y, x = np.indices((8, 24, 24)).astype(float)
    body = ((y - 12) / 10) ** 2 + ((x - 12) / 11) ** 2 <= 1
    lab = np.where(body, 1, 0).astype(np.int16)
    lab[body & (z >= 5) & (np.abs(x - 12) > 3)] = 4
    lab[body & (z < 5) & (((y - 12) / 5) ** 2 + ((x - 8 - i % 2) / 4) ** 2 <= 1)] = 9
    lab[body & (z < 4) & (((y - 10) / 2) ** 2 + ((x - 18) / 2) ** 2 <= 1)] = 11
    ct = np.select([lab == 0, lab == 4, lab == 9, lab == 11], [-1000.0, -800.0, 60.0, 150.0], 20.0)
    ct = ct + rng.normal(0, 5, ct.shape)
    return Case(f"s{i}", np.ones(ct.shape), ct, np.zeros(ct.shape, np.int32), (6.0, 6.0, 6.0), lab)


def test_groups_targets_and_dice():
    lab = np.array([[[0, 11, 12, 9, 10, 4]]])
    assert organs_present([lab], IDS, min_voxels=1) == ("liver", "kidneys", "spleen", "lungs")
    assert organs_present([lab], IDS, min_voxels=2) == ("kidneys",)  # cortex + medulla together
    t = organ_target(lab, IDS, ("liver", "kidneys"))
    assert t.tolist() == [[[0, 2, 2, 1, 0, 0]]]
    d = organ_dice(np.array([[[0, 2, 0, 1, 0, 1]]]), t, ("liver", "kidneys", "spleen"))
    assert d["liver"] == pytest.approx(2 / 3) and d["kidneys"] == pytest.approx(2 / 3) and math.isnan(d["spleen"])
    with pytest.raises(InputError, match="unknown organ"):
        organ_target(lab, IDS, ("heart",))


def test_organ_training_contract():
    rng = np.random.default_rng(0)
    cases = [_case(i, rng) for i in range(4)]
    spec = SegNetSpec(in_channels=1, inputs="ct", filters=(4, 8, 16), z_strides=(1, 2), patch_zyx=(8, 16, 16),
                      classes=("background", "liver", "kidneys", "lungs"))
    seg = train_organ_segmenter(cases[:3], cases[3:], IDS, spec, TrainSettings(epochs=2, patches_per_case=2,
                                                                               batch_size=2))
    assert len(seg.record["val_dice"]) == 2 and seg.record["organs"] == ["liver", "kidneys", "lungs"]
    lab = seg.labels(cases[3].ct_hu)
    assert lab.shape == cases[3].ct_hu.shape and lab.min() >= 0 and lab.max() <= 3
    with pytest.raises(InputError, match="CT alone"):
        train_organ_segmenter(cases[:3], cases[3:], IDS, SegNetSpec(filters=(4, 8, 16), z_strides=(1, 2),
                                                                    patch_zyx=(8, 16, 16)), TrainSettings())
    with pytest.raises(InputError, match="classes"):
        SegNetSpec(in_channels=1, inputs="ct", classes=("liver",))


def test_liver_and_spleen_of_equal_hu_are_told_apart_by_position():
    """Liver (right) and spleen (left) with the same CT number: only position separates them, so the training
    must not flip left-right (the lesion networks' augmentation would swap the two organs' sides)."""
    rng = np.random.default_rng(1)
    cases = []
    for i in range(5):
        z, y, x = np.indices((8, 24, 24)).astype(float)
        body = ((y - 12) / 10) ** 2 + ((x - 12) / 11) ** 2 <= 1
        lab = np.where(body, 1, 0).astype(np.int16)
        lab[body & (z < 6) & (((y - 12) / 4) ** 2 + ((x - 6 - i % 2) / 3) ** 2 <= 1)] = 9  # liver, image left
        lab[body & (z < 6) & (((y - 11) / 3) ** 2 + ((x - 18 + i % 2) / 2.5) ** 2 <= 1)] = 10  # spleen
        ct = np.select([lab == 0, lab == 9, lab == 10], [-1000.0, 60.0, 60.0], 0.0) + rng.normal(0, 5, lab.shape)
        cases.append(Case(f"s{i}", np.ones(lab.shape), ct, np.zeros(lab.shape, np.int32), (6.0,) * 3, lab))
    spec = SegNetSpec(in_channels=2, inputs="ct_windows", filters=(8, 16, 32), z_strides=(1, 2),
                      patch_zyx=(8, 24, 24), classes=("background", "liver", "spleen"))
    seg = train_organ_segmenter(cases[:4], cases[4:], IDS, spec, TrainSettings(epochs=12, patches_per_case=2,
                                                                               batch_size=2, lr=1e-2))
    d = organ_dice(seg.labels(cases[4].ct_hu), organ_target(cases[4].labels, IDS, ("liver", "spleen")),
                   ("liver", "spleen"))
    assert d["liver"] > 0.8 and d["spleen"] > 0.8, d
    assert seg.record["flips"] is False and seg.record["whole_volume"]


def test_whole_volume_window_shifts_content_and_pads_with_air():
    import torch

    from petspect.segmentation.organs import _shift_window

    x = torch.arange(2 * 4 * 6 * 6, dtype=torch.float32).reshape(2, 4, 6, 6)
    y = torch.arange(4 * 6 * 6).reshape(4, 6, 6)
    air = torch.tensor([-1.0, -1.5])
    xo, yo = _shift_window(x, y, (4, 8, 8), np.array([0, 1, -1]), air)
    # window start = (shape - patch) // 2 + shift = (0, -1 + 1, -1 - 1) = (0, 0, -2)
    assert xo.shape == (2, 4, 8, 8) and yo.shape == (4, 8, 8)
    assert torch.equal(xo[:, :, :6, 2:8], x) and torch.equal(yo[:, :6, 2:8], y)
    assert bool((xo[0, :, 6:] == -1.0).all()) and bool((xo[1, :, :, :2] == -1.5).all())
    assert int(yo[:, 6:].abs().sum()) == 0
