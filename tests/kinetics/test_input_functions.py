"""Image-derived input function from a simulated dynamic chest and the learned input function."""

from __future__ import annotations

import numpy as np
import pytest

from petspect.errors import InputError
from petspect.kinetics.dl_input import predict_input, simulate_input_set, train_input_net
from petspect.kinetics.graphical import patlak
from petspect.kinetics.idif import frames_to_input, image_derived_input, simulate_dynamic_chest
from petspect.kinetics.input_function import FRAMINGS, feng_fdg_for_patient
from petspect.kinetics.simulate import FDG_TISSUES

FR = FRAMINGS["fdg-60min"]


def _auc(v):
    return (np.asarray(v) * FR.duration_s).sum(-1)


@pytest.fixture(scope="module")
def chest():
    inp = feng_fdg_for_patient().sampled(FR.end_s[-1])
    return simulate_dynamic_chest(inp, FR, shape=(10, 32, 36), aorta_radius_mm=6.0, psf_fwhm_mm=8.0, seed=1)


def test_partial_volume_lowers_a_small_vessel_and_the_correction_restores_it(chest):
    true = chest.true_tacs["blood"]
    m = chest.labels == 2
    raw = image_derived_input(chest.frames_bq_per_ml, FR, m, correct_pv=False)
    cor = image_derived_input(chest.frames_bq_per_ml, FR, m, vessel_radius_mm=6.0, psf_fwhm_mm=8.0, voxel_mm=4.0)
    late_raw = raw[-4:].mean() / true[-4:].mean()
    late_cor = cor[-4:].mean() / true[-4:].mean()
    assert late_raw < 0.97  # spill-out of a 12 mm vessel at 8 mm FWHM
    assert abs(late_cor - 1) < abs(late_raw - 1)
    assert abs(_auc(cor) / _auc(true) - 1) < 0.15


def test_patlak_with_the_idif(chest):
    cor = image_derived_input(chest.frames_bq_per_ml, FR, chest.labels == 2, vessel_radius_mm=6.0,
                              psf_fwhm_mm=8.0, voxel_mm=4.0)
    ki = float(patlak(chest.true_tacs["tumour"], frames_to_input(cor, FR), FR).slope)
    assert ki == pytest.approx(FDG_TISSUES["tumour"].ki_voxel_per_min, rel=0.15)


def test_idif_bad_inputs(chest):
    with pytest.raises(InputError, match="empty"):
        image_derived_input(chest.frames_bq_per_ml, FR, np.zeros(chest.labels.shape, bool))
    with pytest.raises(InputError, match="needs"):
        image_derived_input(chest.frames_bq_per_ml, FR, chest.labels == 2)
    with pytest.raises(InputError):
        image_derived_input(chest.frames_bq_per_ml[:3], FR, chest.labels == 2)


def test_learned_input_beats_the_raw_idif_on_held_out_subjects():
    train = simulate_input_set(150, FR, seed=11, step_s=4.0)
    test = simulate_input_set(40, FR, seed=12, step_s=4.0)
    assert not np.allclose(train.plasma[0], test.plasma[0])
    net = train_input_net(train, FR, epochs=300, hidden=64, seed=0)
    assert net.history[-1] < 0.2 * net.history[0]
    pred = predict_input(net, test.x)

    def late_error(est):  # the plasma level Patlak's slope depends on most
        return np.abs(est[:, -4:].mean(-1) / test.plasma[:, -4:].mean(-1) - 1).mean()

    assert late_error(pred) < 0.7 * late_error(test.x[:, 0])
    with pytest.raises(InputError):
        predict_input(net, test.x[:, :3])


def test_input_set_is_reproducible():
    a = simulate_input_set(3, FR, seed=5, step_s=4.0)
    b = simulate_input_set(3, FR, seed=5, step_s=4.0)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.plasma, b.plasma)
