"""Patch sampling from dataset.json: layouts in 2D/2.5D/3D, determinism, consistent augmentation."""

from __future__ import annotations

import pytest
import torch

from petspect.errors import ConfigError, DataNotFoundError, InputError
from petspect.io import load
from petspect.train import Augmentation, EpochSampler, PairedVolumeDataset, SuvScaling, read_dataset


def _ds(root, **kw):
    entries, base = read_dataset(root, "training")
    args = dict(input_key="recon_d010", target_key="recon_d100", patch_size=(8, 8, 8), mode="3d", seed=3)
    args.update(kw)
    return PairedVolumeDataset(entries, base, **args)


@pytest.mark.parametrize("mode,patch,extra,n_slices,in_shape,out_shape", [
    ("3d", (8, 8, 8), (), 1, (1, 8, 8, 8), (1, 8, 8, 8)),
    ("3d", (4, 8, 16), ("ct",), 1, (2, 4, 8, 16), (1, 4, 8, 16)),
    ("2d", (8, 12), ("ct",), 1, (2, 8, 12), (1, 8, 12)),
    ("2.5d", (8, 8), ("ct",), 3, (6, 8, 8), (1, 8, 8)),
    ("2.5d", (20, 20), (), 5, (5, 20, 20), (1, 20, 20)),  # larger than the 16 x 16 slices: zero padded
])
def test_item_shapes(tiny_dataset, mode, patch, extra, n_slices, in_shape, out_shape):
    ds = _ds(tiny_dataset, mode=mode, patch_size=patch, extra_keys=extra, n_slices=n_slices, patches_per_volume=2,
             augmentation=Augmentation())
    assert len(ds) == 6
    assert ds.in_channels == in_shape[0] and ds.pet_channel == n_slices // 2
    item = ds[5]
    assert item["input"].shape == in_shape and item["target"].shape == out_shape
    assert item["input"].dtype == torch.float32


def test_2p5d_channels_are_neighbouring_slices(tiny_dataset):
    """Without augmentation a 2.5D item holds slices z-1, z, z+1 of the input, modality-major, and slice z of the
    target at the same in-plane position (found by matching the centre slice in the volume)."""
    ds = _ds(tiny_dataset, mode="2.5d", patch_size=(16, 16), n_slices=3, extra_keys=("ct",))
    low = load(tiny_dataset / ds.entries[0]["recon_d010"]).data
    full = load(tiny_dataset / ds.entries[0]["recon_d100"]).data
    item = ds[0]
    z = [k for k in range(low.shape[0]) if torch.equal(low[k], item["input"][1])]
    assert len(z) == 1
    z = z[0]
    for s, dz in enumerate((-1, 0, 1)):
        torch.testing.assert_close(item["input"][s], low[min(max(z + dz, 0), low.shape[0] - 1)])
    torch.testing.assert_close(item["target"][0], full[z])
    ct = load(tiny_dataset / ds.entries[0]["ct"]).data
    torch.testing.assert_close(item["input"][4], ct[z])


def test_deterministic_per_seed_epoch_index(tiny_dataset):
    a, b = _ds(tiny_dataset, augmentation=Augmentation()), _ds(tiny_dataset, augmentation=Augmentation())
    torch.testing.assert_close(a[2]["input"], b[2]["input"])
    b.set_epoch(1)
    assert not torch.equal(a[2]["input"], b[2]["input"])
    c = _ds(tiny_dataset, augmentation=Augmentation(), seed=4)
    assert not torch.equal(a[2]["input"], c[2]["input"])
    # an (epoch, item) pair, as EpochSampler yields, selects the same patch as set_epoch
    torch.testing.assert_close(a[(1, 2)]["input"], b[2]["input"])
    sampler = EpochSampler(range(3))
    sampler.set_epoch(5)
    assert list(sampler) == [(5, 0), (5, 1), (5, 2)] and len(sampler) == 3


def test_augmentation_is_consistent(tiny_dataset):
    """With input and target the same image, flips, rotations and intensity scaling keep them equal, and the
    scaling stays inside its range (checked through the normalised mean against the unscaled patch)."""
    ds = _ds(tiny_dataset, input_key="activity", target_key="activity", patches_per_volume=8,
             augmentation=Augmentation(intensity_range=(0.5, 2.0)))
    plain = _ds(tiny_dataset, input_key="activity", target_key="activity", patches_per_volume=8, augmentation=None)
    ratios = []
    for i in range(len(ds)):
        item = ds[i]
        torch.testing.assert_close(item["input"], item["target"])
        ref = plain[i]["target"]
        if ref.sum() > 0:
            ratios.append(float(item["target"].sum() / ref.sum()))
    assert all(0.5 - 1e-6 <= r <= 2.0 + 1e-6 for r in ratios)
    assert max(ratios) / min(ratios) > 1.2  # the factor does vary


def test_anatomy_not_intensity_scaled(tiny_dataset):
    ds = _ds(tiny_dataset, extra_keys=("ct",), augmentation=Augmentation(flip=False, rot90=False,
                                                                         intensity_range=(2.0, 2.0)))
    item = ds[0]
    assert set(item["input"][1].unique().tolist()) <= {40.0, -1000.0, 0.0}


def test_foreground_sampling(tiny_dataset):
    """foreground_fraction = 1: every patch centre is above the threshold in the target."""
    ds = _ds(tiny_dataset, patch_size=(3, 3, 3), patches_per_volume=10, foreground_fraction=1.0,
             foreground_threshold=5000.0)
    centres = [float(ds[i]["target"][0, 1, 1, 1]) for i in range(len(ds))]
    assert min(centres) > 5000.0
    uniform = _ds(tiny_dataset, patch_size=(3, 3, 3), patches_per_volume=10)
    assert min(float(uniform[i]["target"][0, 1, 1, 1]) for i in range(len(uniform))) < 5000.0


def test_normalisation_applied_with_units(tiny_dataset):
    raw = _ds(tiny_dataset)[0]
    scaled = _ds(tiny_dataset, normalizations={"recon_d010": SuvScaling(2000.0, unit="Bq/mL"),
                                               "recon_d100": SuvScaling(2000.0, unit="Bq/mL")})[0]
    torch.testing.assert_close(scaled["input"] * 2000.0, raw["input"])
    bad = _ds(tiny_dataset, normalizations={"recon_d010": SuvScaling(1.0, unit="SUVbw")})
    with pytest.raises(InputError, match="SUVbw"):
        bad[0]


def test_bad_configuration(tiny_dataset, tmp_path):
    with pytest.raises(ConfigError, match="lacks keys"):
        _ds(tiny_dataset, extra_keys=("mr_t1",))
    with pytest.raises(ConfigError):
        _ds(tiny_dataset, mode="2d", patch_size=(8, 8, 8))
    with pytest.raises(ConfigError):
        _ds(tiny_dataset, mode="2.5d", patch_size=(8, 8), n_slices=2)
    with pytest.raises(ConfigError):
        _ds(tiny_dataset, mode="4d")
    with pytest.raises(DataNotFoundError):
        read_dataset(tmp_path, "training")
    with pytest.raises(ConfigError):
        Augmentation(intensity_range=(2.0, 1.0))


def test_lesion_weights_follow_the_target(tiny_dataset):
    """weight_key: the weight map is weight_factor on the (dilated) lesion map and 1 elsewhere, and flips and
    turns move it with the target: with the lesion-masked activity as target, weight > 1 wherever the target is
    a lesion voxel, in every flipped or turned patch."""
    from scipy.ndimage import binary_dilation

    ds = _ds(tiny_dataset, mode="2.5d", patch_size=(16, 16), n_slices=3, input_key="activity",
             target_key="activity", patches_per_volume=6, augmentation=Augmentation(intensity_range=None),
             weight_key="lesions",
             weight_factor=5.0, weight_dilate_voxels=1)
    lesions = load(tiny_dataset / ds.entries[0]["lesions"]).numpy() > 0
    grown = binary_dilation(lesions, iterations=1)
    _, _, _, w = ds._volumes(0)
    assert set(w.unique().tolist()) == {1.0, 5.0}
    assert int((w == 5.0).sum()) == int(grown.sum()) > int(lesions.sum())
    hot = 0
    for i in range(len(ds)):
        item = ds[i]
        assert item["weight"].shape == item["target"].shape
        core = item["target"] > 5000.0  # lesion voxels (the map's definition)
        hot += int(core.sum())
        assert torch.all(item["weight"][core] == 5.0)
    assert hot > 0
    plain = _ds(tiny_dataset)
    assert "weight" not in plain[0]


def test_foreground_key_centres_patches_on_lesions(tiny_dataset):
    ds = _ds(tiny_dataset, input_key="activity", target_key="activity", patch_size=(3, 3, 3), patches_per_volume=10,
             foreground_fraction=1.0, foreground_key="lesions")
    assert min(float(ds[i]["target"][0, 1, 1, 1]) for i in range(len(ds))) > 5000.0


def test_bad_weighting(tiny_dataset):
    with pytest.raises(ConfigError, match="weight_factor"):
        _ds(tiny_dataset, weight_key="lesions", weight_factor=0.5)
    with pytest.raises(ConfigError, match="weight_dilate_voxels"):
        _ds(tiny_dataset, weight_key="lesions", weight_dilate_voxels=-1)
    with pytest.raises(ConfigError, match="lacks keys"):
        _ds(tiny_dataset, weight_key="tumours")
