"""MTV, TLG, per-lesion tables and the autoPET metrics on masks whose answers are counted by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from petspect.errors import InputError
from petspect.segmentation.metrics import dice, fp_fn_volume_ml, lesion_detection, score_segmentation
from petspect.segmentation.volumes import label_lesions, lesion_table, lesion_table_csv, mtv_ml, tlg

SP = (2.0, 2.0, 2.0)  # 8 mm^3 = 0.008 mL per voxel


def test_mtv_and_tlg_of_a_cube():
    """10^3 voxels of 8 mm^3 = 8 mL; SUV 3 everywhere inside: TLG = 3 x 8 = 24."""
    m = np.zeros((20, 20, 20), bool)
    m[5:15, 5:15, 5:15] = True
    suv = np.where(m, 3.0, 1.0)
    assert mtv_ml(m, SP) == pytest.approx(8.0)
    assert tlg(suv, m, SP) == pytest.approx(24.0)
    with pytest.raises(InputError):
        tlg(suv[:-1], m, SP)


def test_18_connectivity_joins_edges_not_corners():
    m = np.zeros((6, 6, 6), bool)
    m[1, 1, 1] = m[2, 2, 1] = True  # share an edge: one lesion
    m[4, 4, 4] = m[5, 5, 5] = True  # share a corner only: two lesions
    _, n = label_lesions(m)
    assert n == 3


def test_lesion_table_per_component():
    m = np.zeros((20, 20, 20), bool)
    m[2:4, 2:4, 2:4] = True
    m[10:15, 10:15, 10:15] = True
    suv = np.where(m, 5.0, 0.5)
    suv[12, 12, 12] = 9.0
    rows = sorted(lesion_table(suv, m, SP, affine=np.diag([2.0, 2.0, 2.0, 1.0])), key=lambda r: r.n_voxels)
    assert [r.n_voxels for r in rows] == [8, 125]
    assert rows[1].mtv_ml == pytest.approx(1.0) and rows[1].suv_max == 9.0
    assert rows[1].tlg == pytest.approx((124 * 5.0 + 9.0) * 0.008)
    assert rows[0].suv_mean == pytest.approx(5.0)
    assert rows[1].centroid_x_mm == pytest.approx(24.0)
    text = lesion_table_csv(rows)
    assert text.splitlines()[0].startswith("lesion,n_voxels,mtv_ml,tlg,suv_max")
    assert len(text.splitlines()) == 3


def _case():
    truth = np.zeros((20, 20, 20), np.int16)
    truth[2:6, 2:6, 2:6] = 1      # 64 voxels, found
    truth[12:15, 12:15, 12:15] = 2  # 27 voxels, missed
    pred = np.zeros(truth.shape, bool)
    pred[2:6, 2:6, 3:7] = True    # 48 overlap + 16 outside, one component touching lesion 1
    pred[15:20, 0:2, 0:2] = True  # 20 voxels far from any lesion: a false positive
    return pred, truth


def test_autopet_metrics_by_hand():
    pred, truth = _case()
    assert dice(pred, truth) == pytest.approx(2 * 48 / (84 + 91))
    fp, fn = fp_fn_volume_ml(pred, truth, SP)
    assert fp == pytest.approx(20 * 0.008)  # the touching component's spill-over is not FP volume (autoPET)
    assert fn == pytest.approx(27 * 0.008)
    sens, det, n, nfp = lesion_detection(pred, truth)
    assert (sens, det, n, nfp) == (0.5, 1, 2, 1)
    s = score_segmentation(pred, truth, np.ones(truth.shape), SP)
    assert s.mtv_bias_pct == pytest.approx(100 * (84 - 91) / 91)
    assert s.tlg_bias_pct == pytest.approx(s.mtv_bias_pct)  # uniform SUV


def test_perfect_and_empty_cases():
    pred, truth = _case()
    s = score_segmentation(truth > 0, truth, np.ones(truth.shape), SP)
    assert (s.dice, s.fp_volume_ml, s.fn_volume_ml, s.lesion_sensitivity, s.fp_per_scan) == (1.0, 0.0, 0.0, 1.0, 0.0)
    empty = np.zeros_like(truth)
    assert math.isnan(dice(pred, empty))
    fp, fn = fp_fn_volume_ml(pred, empty, SP)
    assert fp == pytest.approx(pred.sum() * 0.008) and fn == 0.0
    assert math.isnan(lesion_detection(pred, empty)[0])
    with pytest.raises(InputError):
        dice(pred[:-1], truth)
    with pytest.raises(InputError):
        lesion_detection(pred, truth, min_overlap_voxels=0)


def test_binary_truth_is_split_into_components():
    pred, truth = _case()
    assert lesion_detection(pred, truth > 0)[:3] == (0.5, 1, 2)
