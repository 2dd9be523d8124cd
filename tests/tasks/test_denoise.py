"""Denoising tasks as trainer configurations: keys, methods (U-Net, ResNet, cGAN, CycleGAN, noise2noise), inference."""

from __future__ import annotations

import pytest
import torch

from conftest import BQML_PER_SUV, tiny_train_options
from petspect.errors import ConfigError, InputError
from petspect.tasks.denoise import (METHODS, DenoiseOptions, DenoiseTask, bqml_per_suv, denoise_config, denoise_volume,
                                    task_from_key, train_denoiser)
from petspect.train.config import TrainOverlay


def test_task_keys_name_dose_and_time_apart():
    dose, fast = DenoiseTask("dose", 10), DenoiseTask("time", 50, "map")
    assert (dose.input_key, dose.reference_key) == ("recon_d010_osem_ac", "recon_d100_osem_ac")
    assert (fast.input_key, fast.reference_key) == ("recon_t050_map_ac", "recon_d100_map_ac")
    assert dose.target_key("n2n") == "recon_d010_osem_ac_r1" and dose.target_key("unet") == dose.reference_key
    assert dose.map_key() == "recon_d010_map_ac"
    assert dose.model_name("unet") == "unet_d010" and fast.model_name("n2n") == "n2n_t050"
    assert task_from_key("recon_t050_map_ac") == fast
    assert task_from_key("recon_d010_osem_ac_r1") == dose
    for bad in (dict(source="counts"), dict(percent=100), dict(percent=0)):
        with pytest.raises(ConfigError):
            DenoiseTask(**bad)
    with pytest.raises(ConfigError):
        task_from_key("activity")


def test_task_keys_with_fractional_levels_and_time_points():
    """Keys the cohort writer makes (simulate.layout.DatasetKey) name their tasks; the old regex refused these."""
    frac = task_from_key("recon_d012p500_osem_ac")
    assert frac == DenoiseTask("dose", 12.5) and frac.input_key == "recon_d012p500_osem_ac"
    assert frac.model_name("unet") == "unet_d012p500"
    late = task_from_key("recon_d025_osem_ac_h024")
    assert late == DenoiseTask("dose", 25, hours=24.0)
    assert (late.reference_key, late.target_key("n2n")) == ("recon_d100_osem_ac_h024", "recon_d025_osem_ac_r1_h024")
    assert late.model_name("unet") == "unet_d025_h024"
    for bad in ("recon_d100_osem_ac", "recon_d010_osem_nac", "prompts_d010", "recon_d10_osem_ac"):
        with pytest.raises(ConfigError):
            task_from_key(bad)
    with pytest.raises(ConfigError):
        DenoiseTask("dose", 12.3456)


def test_configs_per_method(tiny_cohort, tmp_path):
    assert bqml_per_suv(tiny_cohort) == pytest.approx(BQML_PER_SUV)
    cfgs = {m: denoise_config(tiny_cohort, tmp_path / m, method=m) for m in METHODS}
    assert cfgs["unet"].adversarial is None and cfgs["unet"].network == "unet" and cfgs["unet"].mode == "2.5d"
    assert cfgs["resnet"].network == "resnet" and cfgs["resnet"].residual and not cfgs["unet"].residual
    assert cfgs["cgan"].adversarial == "pix2pix"
    assert cfgs["cyclegan"].adversarial == "cyclegan" and cfgs["cyclegan"].mode == "2d"
    assert cfgs["n2n"].target_key == "recon_d010_osem_ac_r1"
    assert cfgs["unet"].data.normalization.to_dict() == {"kind": "suv_scaling", "factor": BQML_PER_SUV,
                                                         "unit": "Bq/mL"}
    assert cfgs["unet"].card["bqml_per_suv"] == BQML_PER_SUV
    fast = denoise_config(tiny_cohort, tmp_path / "t", task=DenoiseTask("time", 50), extra_keys=("ct",), lr=1e-3)
    assert fast.input_key == "recon_t050_osem_ac" and fast.extra_keys == ("ct",) and fast.lr == 1e-3
    assert fast.data.extra_normalizations["ct"].kind == "affine"
    typed = denoise_config(tiny_cohort, tmp_path / "o", options=DenoiseOptions(
        mode="2d", epochs=3, channels=(4, 8), train=TrainOverlay(lr=5e-3, batch_size=3)), epochs=4)
    assert (typed.data.mode, typed.schedule.epochs, typed.model.channels) == ("2d", 4, (4, 8))
    assert (typed.optim.lr, typed.optim.batch_size) == (5e-3, 3)
    with pytest.raises(ConfigError):
        denoise_config(tiny_cohort, tmp_path / "x", learning_rate=1.0)
    with pytest.raises(ConfigError):
        DenoiseOptions(train={"lr": 1.0})
    with pytest.raises(ConfigError):
        denoise_config(tiny_cohort, tmp_path / "x", method="transformer")
    with pytest.raises(ConfigError):
        denoise_config(tiny_cohort, tmp_path / "x", method="cyclegan", extra_keys=("ct",))
    with pytest.raises(ConfigError):
        denoise_config(tiny_cohort, tmp_path / "x", extra_keys=("pet2",))
    with pytest.raises(ConfigError, match="lesion_weight"):
        denoise_config(tiny_cohort, tmp_path / "x", method="cyclegan", lesion_weight=4.0)
    with pytest.raises(ConfigError, match="weight_factor"):
        denoise_config(tiny_cohort, tmp_path / "x", lesion_weight=0.2)


@pytest.mark.parametrize("method", ["resnet", "cgan", "cyclegan", "n2n"])
def test_every_method_trains_and_predicts(tiny_cohort, tmp_path, method):
    """One tiny epoch of each scheme gives a loadable model whose prediction keeps the input's grid and unit."""
    from petspect.io import load
    from petspect.train import load_model

    cfg = denoise_config(tiny_cohort, tmp_path, method=method, **tiny_train_options(channels=(4,) if method == "resnet" else (4, 8)))
    result = train_denoiser(cfg)
    model = load_model(result.model_dir)
    assert model.card["data"]["method"] == method
    low = load(tiny_cohort / "sub-003" / "recon_d010_osem_ac.nii.gz")
    out = denoise_volume(model, low)
    assert out.shape == low.shape and out.same_grid(low) and out.unit == "Bq/mL"
    assert torch.isfinite(out.data).all()


def test_anatomical_channel_and_fast_scan(tiny_cohort, tmp_path):
    from petspect.io import load
    from petspect.train import load_model

    cfg = denoise_config(tiny_cohort, tmp_path, task=DenoiseTask("time", 50), extra_keys=("ct",),
                         **tiny_train_options())
    model = load_model(train_denoiser(cfg).model_dir)
    assert model.input_keys == ("recon_t050_osem_ac", "ct")
    low = load(tiny_cohort / "sub-003" / "recon_t050_osem_ac.nii.gz")
    ct = load(tiny_cohort / "sub-003" / "ct.nii.gz")
    plain = denoise_volume(model, low, [ct])
    assert plain.shape == low.shape
    with pytest.raises(InputError):
        denoise_volume(model, low)
    # preserve_total: the output's total activity equals the input's, and it is the plain output times one factor
    kept = denoise_volume(model, low, [ct], preserve_total=True)
    assert float(kept.data.double().sum()) == pytest.approx(float(low.data.double().sum()), rel=1e-5)
    ratio = kept.data.double() / plain.data.double()
    big = plain.data.abs() > 1e-3 * float(plain.data.abs().max())
    assert float(ratio[big].max() - ratio[big].min()) < 1e-4
    with pytest.raises(InputError, match="preserve_total"):
        denoise_volume(model, low.with_data(torch.zeros_like(low.data)), [ct], preserve_total=True)
