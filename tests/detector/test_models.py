"""Networks: shape table, masked loss, training reduces the loss, model folders load with weights_only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petspect.detector.models import (AlignedPulseCNN, PositionCNN, PositionMLP, TimingCNN, TrainSettings,
                                      fit_regressor, masked_smooth_l1)
from petspect.detector.neural import NeuralPositioner
from petspect.detector.photodetector import SiPMArray
from petspect.errors import ConfigError, InputError


@pytest.mark.parametrize("net, x, out", [
    (PositionMLP(17), torch.zeros(5, 17), (5, 3)),
    (PositionCNN(4, 4, channels=8), torch.zeros(5, 2, 4, 4), (5, 3)),
    (PositionCNN(8, 6, channels=4, blocks=0), torch.zeros(2, 2, 8, 6), (2, 3)),
    (TimingCNN(32, channels=8), torch.zeros(3, 2, 32), (3, 1)),
    (AlignedPulseCNN(12, channels=4), torch.zeros(3, 2, 26), (3, 1)),
])
def test_shapes(net, x, out, device):
    net = net.to(device).eval()
    assert tuple(net(x.to(device)).shape) == out


def test_invalid_arguments():
    with pytest.raises(ConfigError):
        PositionCNN(1, 4)
    with pytest.raises(ConfigError):
        TimingCNN(30)
    with pytest.raises(InputError):
        PositionCNN(4, 4)(torch.zeros(2, 1, 4, 4))
    with pytest.raises(ConfigError):
        TrainSettings(epochs=0)
    with pytest.raises(ConfigError):
        TrainSettings(epochs=3, average_last=4)
    with pytest.raises(InputError):
        AlignedPulseCNN(12)(torch.zeros(2, 2, 24))  # rows must hold 2 W + 2 features


def test_aligned_pulse_cnn_is_antisymmetric():
    """Swapping the detectors negates the estimate exactly; equal pulses give exactly zero."""
    net = AlignedPulseCNN(10, channels=4).eval()
    x = torch.randn(6, 2, 22, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(net(x), -net(x.flip(1)), atol=1e-6)
        assert torch.equal(net(x[:, :1].expand(-1, 2, -1)), torch.zeros(6, 1))


def test_fit_regressor_keeps_the_best_epoch_and_is_seeded():
    """Trained through petspect.train.loop: the kept weights are those of the epoch of smallest held-out loss,
    a second run with the same seed gives the same history and weights, and averaging reports no epoch."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 6, generator=g)
    y = x[:, :2] * 0.5

    def run(**kw):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(1)
            net = PositionMLP(6, (16,), n_out=2)
        return net, fit_regressor(net, x, y, settings=TrainSettings(epochs=5, batch_size=32, **kw))

    net, hist = run()
    assert hist["best_epoch"] == int(np.argmin(hist["val_loss"])) and len(hist["train_loss"]) == 5
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    net2, hist2 = run()
    assert hist2 == hist and all(torch.equal(a, b) for a, b in zip(net.state_dict().values(),
                                                                      net2.state_dict().values()))
    assert run(average_last=2)[1]["best_epoch"] is None
    with pytest.raises(InputError):
        fit_regressor(PositionMLP(6), x, y[:10])


def test_masked_loss_ignores_unknown_labels():
    pred = torch.zeros(4, 3)
    target = torch.tensor([[1.0, float("nan"), 5.0]] * 4)
    mask = torch.tensor([[True, False, False]] * 4)
    assert float(masked_smooth_l1(pred, target, mask, beta=0.0)) == pytest.approx(1.0)


def test_neural_positioner_learns_and_saves(tmp_path, device):
    """A synthetic light model (Gaussian spot whose width codes depth) is learnt well below chance."""
    sipm = SiPMArray(n_x=4, n_y=4)
    rng = np.random.default_rng(0)
    n = 2000
    pos = np.column_stack([rng.uniform(-6, 6, n), rng.uniform(-6, 6, n), rng.uniform(0, 10, n)])
    cx, cy = sipm.centres_mm()
    width = 2.0 + 0.3 * (10 - pos[:, 2])
    sig = np.exp(-((cx[None, None, :] - pos[:, 0, None, None]) ** 2 + (cy[None, :, None] - pos[:, 1, None, None]) ** 2)
                 / (2 * width[:, None, None] ** 2)) * 200.0
    sig = rng.poisson(sig).astype(np.float32)
    model = NeuralPositioner("mlp", sipm, 10.0, settings=TrainSettings(epochs=12, batch_size=128, lr=3e-3),
                             device=device).fit(sig, pos)
    err = np.abs(model.predict(sig) - pos).mean(axis=0)
    assert err[0] < 1.0 and err[1] < 1.0 and err[2] < 2.0
    model.save(tmp_path / "m")
    assert isinstance(torch.load(tmp_path / "m" / "weights.pt", weights_only=True), dict)
    assert (tmp_path / "m" / "model_card.md").exists()
    again = NeuralPositioner.load(tmp_path / "m", device=device)
    assert np.allclose(again.predict(sig[:10]), model.predict(sig[:10]), atol=1e-4)
