"""Segmentation networks: shape table, argument checks, input scaling, patches, model folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from petspect.errors import FormatError, InputError
from petspect.segmentation.networks import (SUV_SCALE, SegNetSpec, Segmenter, build_network, input_channels,
                                            load_segmenter, predict_probability, save_segmenter)
from petspect.segmentation.train import extract_patches, sample_patch_centres


@pytest.mark.parametrize("spec", [
    SegNetSpec(filters=(4, 8, 16), z_strides=(1, 2), patch_zyx=(8, 16, 16)),
    SegNetSpec(filters=(4, 8, 16, 32), z_strides=(1, 1, 2), patch_zyx=(4, 24, 24), in_channels=1),
    SegNetSpec(kind="segresnet", filters=(8,), patch_zyx=(8, 16, 16)),
])
def test_shape_table(spec):
    torch.manual_seed(0)
    net = build_network(spec).eval()
    x = torch.randn(2, spec.in_channels, *spec.patch_zyx)
    with torch.no_grad():
        assert net(x).shape == (2, 2, *spec.patch_zyx)


def test_spec_refusals():
    with pytest.raises(InputError, match="divisible"):
        SegNetSpec(filters=(4, 8, 16), z_strides=(2, 2), patch_zyx=(6, 16, 16))
    with pytest.raises(InputError):
        SegNetSpec(in_channels=3)
    with pytest.raises(InputError, match="multiple of 8"):
        SegNetSpec(kind="segresnet", filters=(4,), patch_zyx=(8, 16, 16))
    with pytest.raises(InputError, match="3 levels"):
        SegNetSpec(filters=(4, 8), z_strides=(1,), patch_zyx=(8, 16, 16))


def test_input_channels_scale_and_checks():
    suv = np.full((2, 3, 4), 10.0)
    ct = np.full((2, 3, 4), 500.0)
    x = input_channels(suv, ct)
    assert x.shape == (2, 2, 3, 4)
    assert torch.allclose(x[0], torch.full((2, 3, 4), 10.0 / SUV_SCALE)) and torch.allclose(x[1], torch.tensor(0.5))
    with pytest.raises(InputError, match="CT"):
        input_channels(suv, None)
    with pytest.raises(InputError):
        input_channels(suv, ct[:1])


def test_lesion_weighted_centres_and_padded_patches():
    rng = np.random.default_rng(0)
    les = np.zeros((6, 20, 20), np.int16)
    les[2:4, 5:7, 5:7] = 1
    body = np.ones(les.shape, bool)
    c = sample_patch_centres(les, body, 30, 1.0, rng)
    assert len(c) == 30 and (les[tuple(c.T)] > 0).all()
    c = sample_patch_centres(les, les == 0, 30, 0.0, rng)
    assert (les[tuple(c.T)] == 0).all()  # background patches come from the body mask
    x = torch.arange(6 * 20 * 20, dtype=torch.float32).reshape(1, 6, 20, 20) + 5.0
    y = torch.from_numpy(les.astype(np.int64))
    px, py = extract_patches(x, y, np.array([[0, 0, 0], [3, 10, 10]]), (8, 8, 8))
    assert px.shape == (2, 1, 8, 8, 8) and py.shape == (2, 1, 8, 8, 8)
    assert float(px[0].min()) == 5.0  # padded with the channel's minimum, not zeros
    assert px[1, 0, 4, 4, 4] == x[0, 3, 10, 10]  # the centre voxel sits at patch // 2


def test_model_folder_round_trip(tmp_path):
    spec = SegNetSpec(filters=(4, 8, 16), z_strides=(1, 2), patch_zyx=(8, 16, 16))
    torch.manual_seed(1)
    seg = Segmenter(build_network(spec).eval(), spec, "dynunet", record={"best_epoch": 3})
    path = save_segmenter(tmp_path / "m", seg)
    back = load_segmenter(path)
    x = torch.randn(2, 10, 20, 18)
    assert torch.allclose(predict_probability(seg.net, x, spec.patch_zyx),
                          predict_probability(back.net, x, spec.patch_zyx))
    assert back.name == "dynunet" and back.record["best_epoch"] == 3
    (tmp_path / "bad").mkdir()
    with pytest.raises(FormatError):
        load_segmenter(tmp_path / "bad")


@pytest.mark.parametrize("weights", [b"", b"garbage\n"])
def test_load_segmenter_refuses_damaged_weights_with_a_format_error(tmp_path, weights):
    """Empty or garbage model.pt raised EOFError/UnpicklingError (a traceback in `petspect segment --model`)."""
    spec = SegNetSpec(filters=(4, 8, 16), z_strides=(1, 2), patch_zyx=(8, 16, 16))
    folder = save_segmenter(tmp_path / "m", Segmenter(build_network(spec).eval(), spec, "dynunet"))
    (folder / "model.pt").write_bytes(weights)
    with pytest.raises(FormatError, match="not a PyTorch weights file"):
        load_segmenter(folder)


def test_patch_centres_pick_lesions_not_voxels_and_jitter_stays_inside():
    """Each lesion is drawn about equally often, however small: a 1-voxel lesion beside a 64-voxel one gets
    about half the foreground patches (binomial, n = 4000: 0.5 +- 0.03 at > 3 SD), not 1/65."""
    rng = np.random.default_rng(1)
    les = np.zeros((10, 20, 20), np.int16)
    les[1:5, 1:5, 1:5] = 1
    les[8, 15, 15] = 2
    c = sample_patch_centres(les, np.ones(les.shape, bool), 4000, 1.0, rng)
    assert abs(np.mean(les[tuple(c.T)] == 2) - 0.5) < 0.03
    c = sample_patch_centres(les, np.ones(les.shape, bool), 4000, 1.0, rng, jitter_zyx=(2, 3, 3))
    assert (c >= 0).all() and (c < np.array(les.shape)).all()
    near2 = np.abs(c - [8, 15, 15]).max(axis=1) <= 3
    assert near2.mean() > 0.4 and (c[near2][:, 0] >= 6).all()
    assert 0.3 < np.mean(les[tuple(c.T)] == 0) < 0.99  # jitter moves centres off the lesion


def test_post_processing_threshold_exclusion_and_small_components():
    """Probability >= threshold, minus the excluded organs, minus components under min_component_ml
    (2 x 2 x 2 voxels of 6 mm = 1.728 mL survives 1.5 mL; a single voxel, 0.216 mL, does not)."""
    from petspect.segmentation.postprocess import PostProcess, lesion_mask

    p = np.zeros((8, 10, 10))
    p[1:3, 1:3, 1:3] = 0.8
    p[6, 7, 7] = 0.9
    p[5, 1, 8] = 0.45
    ex = np.zeros(p.shape, bool)
    ex[6, 7, 7] = True
    sp = (6.0, 6.0, 6.0)
    assert lesion_mask(p, sp).sum() == 9
    assert lesion_mask(p, sp, PostProcess(0.4)).sum() == 10
    assert lesion_mask(p, sp, exclude=ex).sum() == 8
    assert lesion_mask(p, sp, PostProcess(0.4, 1.5)).sum() == 8
    with pytest.raises(InputError):
        PostProcess(1.0)
    with pytest.raises(InputError):
        lesion_mask(p[0], sp)


def test_flip_averaged_inference_is_flip_equivariant_and_round_trips(tmp_path):
    """With ``flips`` the softmax is the mean over the y/x flips: flipping the input flips the output exactly
    (a network without it is not equivariant); the flag is kept in the model folder."""
    spec = SegNetSpec(filters=(4, 8, 16), z_strides=(1, 2), patch_zyx=(8, 16, 16))
    torch.manual_seed(3)
    seg = Segmenter(build_network(spec).eval(), spec, "dynunet", flips=True)
    suv = np.random.default_rng(0).gamma(2.0, 1.0, (8, 16, 16))
    ct = np.random.default_rng(1).normal(0.0, 50.0, (8, 16, 16))
    p = seg.probability(suv, ct)
    q = seg.probability(suv[:, :, ::-1].copy(), ct[:, :, ::-1].copy())
    assert torch.allclose(p.flip(2), q, atol=1e-5)
    seg.flips = False
    p0 = seg.probability(suv, ct)
    q0 = seg.probability(suv[:, :, ::-1].copy(), ct[:, :, ::-1].copy())
    assert not torch.allclose(p0.flip(2), q0, atol=1e-5)
    seg.flips = True
    back = load_segmenter(save_segmenter(tmp_path / "m", seg))
    assert back.flips is True and torch.allclose(back.probability(suv, ct), p, atol=1e-6)


def test_weight_average_of_the_last_epochs_is_kept_only_when_validation_prefers_it():
    """``average_last`` averages the last epochs' weights; the study keeps the average only when its
    validation score is at least the best single epoch's, and records which weights it kept."""
    from petspect.segmentation.train import TrainSettings, fit_segmentation_network

    rng = np.random.default_rng(0)
    spec = SegNetSpec(filters=(4, 8, 16), z_strides=(1, 1), patch_zyx=(8, 16, 16))
    les = np.zeros((8, 16, 16), np.int64)
    les[3:5, 6:9, 6:9] = 1
    x = torch.from_numpy(np.stack([rng.normal(0, 0.1, les.shape) + les, np.zeros(les.shape)]).astype(np.float32))
    for score, kept in ((lambda s, it=iter([0.5, 0.6, 0.4, 0.7]): next(it), "average"),
                        (lambda s, it=iter([0.5, 0.6, 0.4, 0.1]): next(it), "epoch 2")):
        seg = fit_segmentation_network([x, x], [les, les], [les.astype(np.int32)] * 2, [np.ones(les.shape, bool)] * 2,
                                       spec, TrainSettings(epochs=3, patches_per_case=2, batch_size=2, average_last=2),
                                       validate=score, name="t")
        assert seg.record["averaged_epochs"] == 2 and seg.record["weights"].startswith(kept)
    with pytest.raises(InputError):
        TrainSettings(epochs=3, average_last=4)
