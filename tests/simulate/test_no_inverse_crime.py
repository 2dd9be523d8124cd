"""No inverse crime: a finer truth with detector blur, estimated additive terms, and the record saying so."""

from __future__ import annotations

import pytest
import torch

from petspect.errors import InputError
from petspect.simulate import no_inverse_crime as nic
from petspect.simulate.presets import get_preset
from petspect.volume import Volume


def test_block_mean_preserves_totals_and_refuses_wrong_shapes():
    fine = Volume.centered(torch.arange(4 * 8 * 8, dtype=torch.float32).reshape(4, 8, 8), (2.0,) * 3)
    like = Volume.centered(torch.zeros(2, 4, 4), (4.0,) * 3)
    coarse = nic.block_mean(fine, 2, like)
    assert float(coarse.data.sum()) * 8 == pytest.approx(float(fine.data.sum()))
    assert float(coarse.data[0, 0, 0]) == pytest.approx(float(fine.data[:2, :2, :2].mean()))
    with pytest.raises(InputError):
        nic.block_mean(fine, 3, like)


def test_describe_states_the_inverse_crime():
    c = get_preset("quick")
    d = nic.describe(c)
    assert d["inverse_crime"] is False and "2x finer" in d["truth_grid"] and "delayed" in d["additive_terms"]
    c.acquisition.truth_oversample = 1
    assert nic.describe(c)["inverse_crime"] is True
    c = get_preset("spect-tc99m")
    d = nic.describe(c)
    assert d["inverse_crime"] is False and "triple-energy-window" in d["additive_terms"]
    c.acquisition.truth_oversample = 1
    assert nic.describe(c)["inverse_crime"] is True and "same model" in nic.describe(c)["note"]


def test_spect_truth_is_projected_from_the_finer_grid_onto_the_same_detector():
    """A SPECT subject's truth: the 2x finer phantom through the collimator model onto the reconstruction's
    detector pixels; same data shape, counts within discretisation error (a few %) but not identical."""
    from petspect.simulate.subject import build_system, make_subject_phantom

    c = get_preset("spect-tc99m")
    c.phantom.voxel_mm, c.phantom.params["shape"], c.scanner.n_views = 12.0, [4, 32, 32], 16
    phantom = make_subject_phantom(c.validate(), 5)
    coarse = build_system(c, phantom)
    truth = nic.truth_scan(c, phantom, coarse, build_system)
    assert truth is not None and tuple(truth.expected.shape) == tuple(coarse.data_shape)
    assert truth.info["truth_voxel_mm"] == 6.0 and float(truth.randoms.sum()) == 0.0
    ratio = float(truth.expected.sum() / coarse.expected_full_dose().sum())
    assert 0.9 < ratio < 1.1
    assert not torch.allclose(truth.expected, coarse.expected_full_dose(), rtol=1e-3)
    assert tuple(truth.activity.shape) == tuple(phantom["activity"].shape)


def test_oversampled_phantom_has_the_same_anatomy_on_a_finer_grid():
    from petspect.phantoms.base import make_phantom

    ph = make_phantom("torso", seed=3, voxel_mm=12.0, fov="chest-abdomen", shape=[4, 24, 24])
    fine = nic.oversampled_phantom(ph, 2)
    assert fine["activity"].shape == (8, 48, 48) and fine["activity"].spacing_mm == (6.0, 6.0, 6.0)
    coarse = nic.block_mean(fine["activity"], 2, ph["activity"])
    # same subject: the averaged fine truth agrees with the coarse phantom's total within partial-volume effects
    assert float(coarse.data.sum()) == pytest.approx(float(ph["activity"].data.sum()), rel=0.1)
    labels_f = nic.block_mean(fine["labels"].with_data(fine["labels"].data.float()), 2,
                              ph["labels"].with_data(ph["labels"].data.float()))
    assert float(((labels_f.data > 0) == (ph["labels"].data > 0)).float().mean()) > 0.9
