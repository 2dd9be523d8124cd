"""The CAD CNN: seeded construction, one logit, training on a separable toy task, occlusion maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petspect.cad.cnn import CnnMethod, CnnSettings, make_network, occlusion_map
from petspect.cad.cohort import CadTask
from petspect.errors import ConfigError, InputError


@pytest.mark.parametrize("arch", ["densenet", "resnet"])
def test_network_is_seeded_and_gives_one_logit(arch):
    s = CnnSettings(architecture=arch, init_features=4, growth_rate=4, block_config=(1, 1), channels=(4, 8, 8, 8))
    state = torch.get_rng_state()
    a, b = make_network(s), make_network(s)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is untouched
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    a.eval()
    assert a(torch.zeros(2, 1, 16, 16, 16)).shape == (2, 1)


def test_bad_settings():
    with pytest.raises(ConfigError):
        CnnSettings(architecture="vit")
    with pytest.raises(ConfigError):
        CnnSettings(val_fraction=0.9)


class _Feats:
    def __init__(self, n=16, seed=0):
        rng = np.random.default_rng(seed)
        self.labels = np.r_[np.zeros(n // 2, int), np.ones(n // 2, int)]
        x = rng.normal(1.0, 0.05, size=(n, 12, 12, 12)).astype(np.float32)
        x[self.labels == 1, 4:8, 4:8, 4:8] *= 0.4  # a strong central deficit
        self.cnn_inputs = x
        self.task = CadTask.AD


def test_cnn_learns_a_strong_deficit_and_scores_honestly():
    f = _Feats()
    # 32 subjects at lr 3e-3: the deficit is learned for every weight seed 0-5 tried (16 subjects at lr 1e-2 were
    # at the edge: one seed in six, or another thread count, gave no separation)
    f = _Feats(n=32)
    m = CnnMethod(CnnSettings(epochs=15, init_features=4, growth_rate=4, block_config=(1, 1), lr=3e-3, batch_size=4))
    train = np.arange(32)
    honest = m.fit(f, train)
    assert np.isnan(honest).sum() == 24 and np.isfinite(honest).sum() == 8  # only validation subjects
    test = _Feats(seed=5)
    s = m.score(test, np.arange(16))
    assert s[test.labels == 1].mean() > s[test.labels == 0].mean()


def test_occlusion_by_itself_is_zero_and_finds_the_deficit():
    f = _Feats()
    m = CnnMethod(CnnSettings(epochs=12, init_features=4, growth_rate=4, block_config=(1, 1), lr=1e-2, batch_size=4))
    m.fit(f, np.arange(16))
    img = f.cnn_inputs[-1]
    assert np.allclose(occlusion_map(m.model, img, img, patch=4), 0.0, atol=1e-5)
    occ = occlusion_map(m.model, img, np.ones_like(img), patch=4)
    assert occ.shape == img.shape and np.isfinite(occ).all()
    with pytest.raises(InputError):
        occlusion_map(m.model, img[0], img[0], patch=4)
