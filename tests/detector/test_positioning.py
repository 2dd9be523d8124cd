"""Positioning: centre-of-gravity edge compression and the learned baselines on small simulated data."""

from __future__ import annotations

import numpy as np
import pytest

from petspect.detector.photodetector import SiPMArray
from petspect.detector.positioning import (AngerLogic, GradientTreeBoosting, NearestNeighbours, centre_of_gravity,
                                           normalised_features)
from petspect.detector.simulate import DetectorConfig, fan_beams, pencil_grid, simulate_events
from petspect.errors import InputError

CONFIG = DetectorConfig("LYSO", 8.0, SiPMArray(n_x=4, n_y=4))


@pytest.fixture(scope="module")
def grid_events():
    entry, mask = pencil_grid(CONFIG, 1.0, 9)
    ev = simulate_events(CONFIG, entry, mask, np.random.default_rng(5))
    return ev.subset(ev.edep_kev > 400)


def test_centre_of_gravity_compresses_at_edges(grid_events):
    """Anger positioning is pulled towards the centre near the lateral faces (light lost / array edge):
    the mean |CoG| of edge beams is far below the true position, and the local slope d(CoG)/dx is smaller at
    the edge than in the centre."""
    ev = grid_events
    cog = centre_of_gravity(ev.signals, CONFIG.sipm)
    x = ev.beam_mm[:, 0]
    edge = np.abs(x) > 5.0
    assert np.mean(np.abs(cog[edge, 0])) < 0.85 * np.mean(np.abs(x[edge]))
    beams = np.unique(x)
    means = np.array([cog[x == b, 0].mean() for b in beams])
    slope = np.gradient(means, beams)
    centre_slope = slope[np.abs(beams) < 2].mean()
    edge_slope = slope[np.abs(beams) > 5].mean()
    assert edge_slope < 0.7 * centre_slope


def test_learned_estimators_beat_anger(grid_events):
    ev = grid_events
    rng = np.random.default_rng(6)
    idx = rng.permutation(len(ev))
    tr, te = ev.subset(idx[: len(ev) * 3 // 4]), ev.subset(idx[len(ev) * 3 // 4:])
    errs = {}
    for est in (AngerLogic(CONFIG.sipm), NearestNeighbours(k=15), GradientTreeBoosting(max_iter=60)):
        est.fit(tr.signals, tr.position_mm, tr.label_mask)
        p = est.predict(te.signals)
        errs[est.name] = np.mean(np.abs(p[:, :2] - te.position_mm[:, :2]))
        assert np.isfinite(p).all()
    assert errs["gbt"] < errs["anger"] and errs["knn"] < errs["anger"]


def test_fan_beam_labels_one_coordinate():
    entry, mask = fan_beams(CONFIG, 2.0, 40, np.random.default_rng(7))
    assert np.all(mask.sum(axis=1) == 1)
    ev = simulate_events(CONFIG, entry, mask, np.random.default_rng(8))
    assert np.all(np.isnan(ev.beam_mm[~ev.label_mask[:, :2]]))
    gbt = GradientTreeBoosting(max_iter=30).fit(ev.signals, ev.position_mm, ev.label_mask)
    p = gbt.predict(ev.signals[:5])
    assert np.isfinite(p[:, :2]).all() and np.isnan(p[:, 2]).all()  # depth never labelled by fans


def test_features_and_errors():
    f = normalised_features(np.ones((3, 4, 4)))
    assert f.shape == (3, 17) and np.allclose(f[:, :16].sum(axis=1), 1.0)
    with pytest.raises(InputError):
        AngerLogic(CONFIG.sipm).predict(np.ones((2, 4, 4)))
    with pytest.raises(InputError):
        AngerLogic(CONFIG.sipm).fit(np.ones((2, 4)), np.zeros((2, 3)))
    with pytest.raises(InputError):
        NearestNeighbours(k=0)
