"""Segmentation-based mu maps (MR classes, NAC outline) and the UTE R2 contrast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petspect.ac.mr_contrasts import ute_bone_image
from petspect.ac.segmentation_ac import (MU_CLASSES_PER_MM, MrSegmentation, body_outline, mr_segmentation_mu,
                                         nac_outline_mu)
from petspect.errors import InputError
from petspect.materials import linear_attenuation_per_mm


def _torso_like(n=48):
    """Ellipse body (signal 0.8) with two lungs (0.1) and a thin dark 'bone' ring (0.15); 2 slices, 8 mm voxels."""
    yy, xx = np.mgrid[:n, :n] - (n - 1) / 2
    body = (xx / 20) ** 2 + (yy / 14) ** 2 <= 1
    lungs = ((xx - 8) ** 2 + yy ** 2 <= 25) | ((xx + 8) ** 2 + yy ** 2 <= 25)
    ring = body & ((xx / 20) ** 2 + (yy / 14) ** 2 > 0.8)
    img = np.where(body, 0.8, 0.0)
    img[lungs] = 0.1
    bone = np.zeros_like(img)
    spine = (xx ** 2 + (yy - 9) ** 2) <= 4
    img[spine] = 0.15
    bone[spine] = 0.4  # UTE R2 (1/ms) of a bone mixture
    bone[body & ~spine & ~lungs] = 0.02
    _ = ring
    return (np.stack([img, img]).astype(np.float32), np.stack([bone, bone]).astype(np.float32),
            np.stack([body] * 2), np.stack([lungs] * 2), np.stack([spine] * 2))


def test_mr_classes_air_lung_soft_bone():
    img, ute, body, lungs, spine = _torso_like()
    mu, cls = mr_segmentation_mu(img, spacing_mm=(8.0, 8.0, 8.0))
    cls = cls.numpy()
    assert (cls[~body] == 0).all()
    assert (cls[lungs] == 1).mean() > 0.8  # lungs are large dark regions (> 40 mL)
    assert (cls[spine] == 2).all()  # small dark region without a bone image: soft tissue
    assert float(mu.max()) == pytest.approx(MU_CLASSES_PER_MM["soft_tissue"])
    mu_b, cls_b = mr_segmentation_mu(img, spacing_mm=(8.0, 8.0, 8.0), bone_image=ute)
    assert (cls_b.numpy()[spine] == 3).all()
    assert float(mu_b.max()) == pytest.approx(MU_CLASSES_PER_MM["bone"])
    _, cls_head = mr_segmentation_mu(img, spacing_mm=(8.0, 8.0, 8.0), settings=MrSegmentation(lung=False))
    assert not (cls_head.numpy() == 1).any()


def test_nac_outline_is_water_inside_the_body():
    img, _, body, _, _ = _torso_like()
    nac = np.where(body, 1.0, 0.0).astype(np.float32) + 0.01
    mu = nac_outline_mu(nac).numpy()
    water = linear_attenuation_per_mm("water", 511.0)
    assert water == pytest.approx(0.0096, abs=3e-4)  # docs/REFERENCE.md: water 0.096/cm at 511 keV
    inside = mu > 0
    assert np.abs(mu[inside] - water).max() < 1e-7
    assert (inside == body).mean() > 0.93  # the outline of a blurred edge: within about one voxel


def test_segmentation_refuses_bad_images():
    with pytest.raises(InputError):
        body_outline(np.zeros((2, 8, 8)), 0.1)  # empty
    with pytest.raises(InputError):
        body_outline(np.full((2, 8, 8), np.nan), 0.1)
    with pytest.raises(InputError):
        mr_segmentation_mu(np.ones((8, 8)), spacing_mm=(1, 1, 1))  # 2D
    img, ute, *_ = _torso_like()
    with pytest.raises(InputError):
        mr_segmentation_mu(img, spacing_mm=(8, 8, 8), bone_image=ute[:1])


def test_ute_r2_orders_bone_soft_tissue_air():
    names = {0: "background", 1: "soft_tissue", 2: "skull", 3: "ribs"}
    labels = torch.tensor([0, 1, 2, 3]).repeat(50).reshape(1, 10, 20)
    r2 = ute_bone_image(labels, names, seed=0, noise_fraction=0.0)
    val = {k: float(r2[labels == k].mean()) for k in names}
    assert val[0] == 0.0
    assert 0.01 < val[1] < 0.04  # long-T2 muscle, T2 44 ms: (TE2 - TE1) / T2 ~ 0.05 over 2.39 ms
    assert val[2] > 0.5 and val[3] > 0.05 and val[2] > val[3] > val[1]
    with pytest.raises(InputError):
        ute_bone_image(labels, names, seed=0, noise_fraction=-1)


def test_nac_outline_not_set_by_a_hot_organ():
    """A PSMA-like NAC: low body uptake with a 50x hotter small organ; the outline still covers the body."""
    _, _, body, _, _ = _torso_like()
    nac = np.where(body, 0.3, 0.0).astype(np.float32)
    nac[:, 20:23, 20:23] = 15.0
    mu = nac_outline_mu(nac).numpy()
    assert ((mu > 0) == body).mean() > 0.93


def test_body_outline_keeps_a_body_cut_by_the_image_edge():
    # a torso wider than the field of view: the body touches the left and right image edges
    img = np.zeros((2, 20, 20), np.float32)
    img[:, 5:15, :] = 1.0
    mask = body_outline(img, 0.1)
    assert mask[:, 5:15, :].all()  # the edge columns stay body (closing used to erode them)
    assert not mask[:, :5].any() and not mask[:, 15:].any()
