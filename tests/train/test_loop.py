"""The generic training loop: best-epoch tracking and early stopping, weight averaging, in-memory fitting."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from petspect.errors import ConfigError, InputError
from petspect.train.loop import BestTracker, LoopSettings, fit_tensors, predict_tensors, running_average


def test_best_tracker_min_max_delta_and_patience():
    t = BestTracker("min", min_delta=0.1, patience=2)
    assert t.update(1.0, 0) and t.value == 1.0 and t.epoch == 0
    assert not t.update(0.95, 1)  # within min_delta: no gain
    assert not t.should_stop
    assert not t.update(2.0, 2) and t.should_stop  # two epochs in a row without gain
    assert t.state_dict() == {"value": 1.0, "epoch": 0, "bad_epochs": 2}
    assert t.update(0.5, 3) and not t.should_stop  # a gain resets the count
    up = BestTracker("max")
    assert up.update(1.0, 0) and up.update(1.5, 1) and not up.update(1.2, 2) and up.epoch == 1
    with pytest.raises(ConfigError):
        BestTracker("lowest")
    with pytest.raises(ConfigError):
        BestTracker(patience=0)


def test_best_tracker_nan_never_wins_and_state_round_trips():
    t = BestTracker("min")
    assert t.update(float("nan"), 0)  # the first value is kept, so there are weights to restore
    assert t.update(3.0, 1) and not t.update(float("nan"), 2) and t.value == 3.0
    again = BestTracker("min")
    again.load_state_dict(t.state_dict())
    assert again.state_dict() == t.state_dict() and not again.update(3.0, 3)


def test_running_average_is_the_mean_of_the_states():
    states = [{"w": torch.tensor([float(k), 2.0 * k]), "n": torch.tensor(k)} for k in range(4)]
    avg = None
    for k, st in enumerate(states):
        avg = running_average(avg, st, k)
    assert torch.allclose(avg["w"], torch.tensor([1.5, 3.0])) and avg["n"] == 3  # integer buffers: the latest
    assert avg["w"] is not states[-1]["w"]


def _problem(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3


def _net(seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(3, 1)


def _mse(net, batch):
    x, y = batch
    return ((net(x) - y) ** 2).mean()


def test_fit_tensors_learns_a_linear_map_and_restores_the_best_epoch():
    x, y = _problem()
    xv, yv = _problem(64, seed=1)
    net = _net()
    seen = []

    def validate(m):
        v = float(((predict_tensors(m, xv) - yv) ** 2).mean())
        seen.append(v)
        return v

    r = fit_tensors(net, (x, y), loss=_mse, validate=validate, generator=torch.Generator().manual_seed(0),
                    settings=LoopSettings(epochs=30, batch_size=32, lr=0.1))
    assert r.val == seen and r.best_epoch == min(range(30), key=seen.__getitem__)
    best = min(seen)
    assert math.isclose(validate(net), best, rel_tol=1e-6) and best < 1e-3  # the best epoch's weights
    assert not net.training
    assert torch.allclose(net.weight, torch.tensor([[1.0, -2.0, 0.5]]), atol=0.05)


def test_fit_tensors_is_a_function_of_its_generator_and_stops_early():
    x, y = _problem()
    runs = []
    for _ in range(2):
        net = _net()
        r = fit_tensors(net, (x, y), loss=_mse, validate=lambda m: float(_mse(m, (x, y)).detach()),
                        generator=torch.Generator().manual_seed(4), settings=LoopSettings(epochs=4, batch_size=50, lr=0.05))
        runs.append((r.train_loss, net.weight.detach().clone()))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    calls = iter([1.0, 0.5, 0.6, 0.7, 0.4, 0.3])  # no gain in epochs 2 and 3: stop after epoch 3
    r = fit_tensors(_net(), (x, y), loss=_mse, validate=lambda m: next(calls), generator=torch.Generator(),
                    settings=LoopSettings(epochs=6, batch_size=64, lr=0.01, patience=2))
    assert r.stopped_early and len(r.val) == 4 and r.best_epoch == 1


def test_fit_tensors_index_and_average():
    """Only the indexed rows are trained on (rows outside hold NaN that would poison the loss); with
    average_last the weights are the mean of the last epochs' and no epoch is reported."""
    x, y = _problem()
    y_bad = y.clone()
    y_bad[200:] = float("nan")
    ends = []

    def remember(m):
        ends.append({k: v.clone() for k, v in m.state_dict().items()})
        return 0.0

    net = _net()
    r = fit_tensors(net, (x, y_bad), loss=_mse, validate=remember, generator=torch.Generator().manual_seed(0),
                    index=torch.arange(200), settings=LoopSettings(epochs=3, batch_size=40, lr=0.05, average_last=2))
    assert r.best_epoch is None and all(math.isfinite(v) for v in r.train_loss)
    assert torch.allclose(net.weight, (ends[1]["weight"] + ends[2]["weight"]) / 2)


def test_bad_settings_and_inputs():
    with pytest.raises(ConfigError):
        LoopSettings(epochs=0, batch_size=1, lr=1e-3)
    with pytest.raises(ConfigError):
        LoopSettings(epochs=3, batch_size=1, lr=1e-3, average_last=4)
    with pytest.raises(ConfigError):
        LoopSettings(epochs=3, batch_size=1, lr=1e-3, average_last=1, patience=2)
    with pytest.raises(InputError):
        fit_tensors(_net(), (torch.zeros(4, 3), torch.zeros(5, 1)), loss=_mse, validate=lambda m: 0.0,
                    generator=torch.Generator(), settings=LoopSettings(epochs=1, batch_size=2, lr=0.1))
