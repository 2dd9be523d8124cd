"""Bad inputs to ``petspect register``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.io import save
from petspect.volume import Volume

runner = CliRunner()


def _ball_pet() -> Volume:
    z, y, x = np.indices((10, 32, 32))
    ball = (z - 5) ** 2 * 16 + (y - 12) ** 2 * 16 + (x - 20) ** 2 * 16 <= 10.0 ** 2
    data = np.where(ball, 30000.0, 3000.0).astype(np.float32)
    return Volume.centered(torch.from_numpy(data), (4.0, 4.0, 4.0), unit="Bq/mL", modality="PT")


def test_register_leaves_no_output_folder_when_it_fails(tmp_path):
    """A failed register (missing or constant input) left a marked empty folder, and the rerun with good
    inputs was then refused with 'output exists'."""
    vol = _ball_pet()
    save(vol, tmp_path / "pet.nii.gz")
    save(vol.with_data(torch.zeros(vol.shape), unit="a.u."), tmp_path / "flat.nii.gz")
    for moving in ("missing.nii.gz", "flat.nii.gz"):
        r = runner.invoke(app, ["register", str(tmp_path / moving), str(tmp_path / "pet.nii.gz"),
                                "--out", str(tmp_path / "reg")])
        assert r.exit_code == 2, r.output
        assert not (tmp_path / "reg").exists(), moving
    r = runner.invoke(app, ["register", str(tmp_path / "pet.nii.gz"), str(tmp_path / "pet.nii.gz"), "--method",
                            "learned", "--model", str(tmp_path / "no_model"), "--out", str(tmp_path / "reg")])
    assert r.exit_code == 2 and not (tmp_path / "reg").exists(), r.output
    r = runner.invoke(app, ["register", str(tmp_path / "pet.nii.gz"), str(tmp_path / "pet.nii.gz"),
                            "--out", str(tmp_path / "reg"), "--transform", "translation", "--metric", "mse"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "reg" / "transform.tfm").is_file()


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """A learned PET -> CT registration model (one epoch: the refusals, not the fields, are tested)."""
    from petspect.registration.learned import make_pairs, save_learned_registration, train_learned_registration

    tmp = tmp_path_factory.mktemp("learned")
    z, y, x = np.indices((12, 24, 24)).astype(float)
    body = ((y - 12) / 10) ** 2 + ((x - 12) / 11) ** 2 <= 1
    act = Volume.centered(torch.from_numpy(np.where(body, 1000.0, 0).astype(np.float32)), (6.0,) * 3,
                          unit="Bq/mL", modality="PT")
    ct = Volume.centered(torch.from_numpy(np.where(body, 40.0, -1000.0).astype(np.float32)), (6.0,) * 3,
                         unit="HU", modality="CT")
    rng = np.random.default_rng(0)
    model = train_learned_registration(make_pairs(act, ct, 2, rng), make_pairs(act, ct, 1, rng), channels=(4, 8),
                                       epochs=1, batch_size=2)
    save(act, tmp / "pet.nii.gz")
    save(ct, tmp / "ct.nii.gz")
    d = act.data.clone()
    d[3, 4, 4] = float("nan")
    save(act.with_data(d), tmp / "pet_nan.nii.gz")
    save(Volume(act.data, act.spacing_mm, (900.0, 900.0, 900.0), unit="Bq/mL", modality="PT"), tmp / "pet_far.nii.gz")
    return {"tmp": tmp, "model": save_learned_registration(tmp / "model", model)}


@pytest.mark.parametrize("moving, fixed, expect", [("pet_nan", "ct", "NaN"), ("pet_far", "ct", "overlap"),
                                                   ("ct", "pet", "HU")])
def test_register_learned_refuses_images_it_cannot_register(learned, tmp_path, moving, fixed, expect):
    """A NaN voxel, a moving image outside the fixed one (resampled to a constant) or swapped arguments gave a
    field and a 'moved' image with exit code 0."""
    t = learned["tmp"]
    r = runner.invoke(app, ["register", str(t / f"{moving}.nii.gz"), str(t / f"{fixed}.nii.gz"), "--method",
                            "learned", "--model", str(learned["model"]), "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and expect in r.output, r.output
    assert not (tmp_path / "r").exists()


def test_register_refuses_images_that_do_not_overlap_with_identity_init(tmp_path):
    """Images apart in patient coordinates gave SimpleITK's 'All samples map outside moving image buffer' as an
    internal error with a traceback."""
    vol = _ball_pet()
    save(vol, tmp_path / "pet.nii.gz")
    save(Volume(vol.data, vol.spacing_mm, (900.0, 900.0, 900.0), unit="Bq/mL", modality="PT"), tmp_path / "far.nii.gz")
    r = runner.invoke(app, ["register", str(tmp_path / "far.nii.gz"), str(tmp_path / "pet.nii.gz"),
                            "--out", str(tmp_path / "r")])
    assert r.exit_code == 2 and "overlap" in r.output and "--init geometry" in r.output, r.output
    assert not (tmp_path / "r").exists()


def test_register_init_geometry_registers_images_that_do_not_overlap(tmp_path):
    """The refusal above points to ``--init geometry``; that option crashed for every input (SimpleITK's
    CenteredTransformInitializer was handed a TranslationTransform). It now registers the pair."""
    vol = _ball_pet()
    save(vol, tmp_path / "pet.nii.gz")
    save(Volume(vol.data, vol.spacing_mm, (900.0, 900.0, 900.0), unit="Bq/mL", modality="PT"), tmp_path / "far.nii.gz")
    r = runner.invoke(app, ["register", str(tmp_path / "far.nii.gz"), str(tmp_path / "pet.nii.gz"),
                            "--init", "geometry", "--out", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    from petspect.registration.rigid import read_transform

    shift = read_transform(tmp_path / "r" / "transform.tfm")[:3, 3]  # fixed -> moving, mm
    expected = 900.0 - np.asarray(vol.origin_mm, dtype=float)  # the same data, its origin moved to 900 mm
    np.testing.assert_allclose(np.abs(shift), np.abs(expected), atol=1.0)
