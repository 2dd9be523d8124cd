"""Deep features: ROI patches and the autoencoder bottleneck."""

from __future__ import annotations

import numpy as np
import pytest

from petspect.errors import InputError
from petspect.radiomics.deep import deep_features, roi_patch, train_deep_features
from petspect.radiomics.models import simulate_lesion_cohort


def test_roi_patch_is_centred_and_normalised():
    img = np.ones((10, 12, 14)) * 3.0
    mask = np.zeros(img.shape, bool)
    mask[0:3, 0:3, 0:3] = True  # at the corner: the patch is zero-padded, never wrapped
    p = roi_patch(img, mask, size=8)
    assert p.shape == (2, 8, 8, 8) and p[1].sum() == 27
    assert np.allclose(p[0][p[1] > 0], 1.0)  # image / ROI mean
    with pytest.raises(InputError, match="empty"):
        roi_patch(img, np.zeros(img.shape, bool))
    with pytest.raises(InputError, match="nonzero"):
        roi_patch(np.zeros(img.shape), mask)


def test_autoencoder_learns_and_features_are_reproducible():
    imgs, masks, _ = simulate_lesion_cohort(8, seed=2, size=16)
    patches = np.stack([roi_patch(i, m, size=16) for i, m in zip(imgs, masks)])
    a = train_deep_features(patches, n_features=8, epochs=8, seed=1)
    b = train_deep_features(patches, n_features=8, epochs=8, seed=1)
    assert a.history[-1] < a.history[0]
    fa, fb = deep_features(a, imgs[0], masks[0]), deep_features(b, imgs[0], masks[0])
    assert list(fa) == [f"deep_{i:03d}" for i in range(8)] and fa == fb
    assert deep_features(a, imgs[1], masks[1]) != fa
    with pytest.raises(InputError):
        train_deep_features(patches[:, :1])
