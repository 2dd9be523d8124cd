"""``petspect consistency IMAGE DATA``: the deviance, the map file, and refusals of images off the grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.io import save
from petspect.simulate.acquisition import simulate_acquisition
from petspect.systems.acquisition import save_acquisition
from petspect.volume import Volume


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("cons")
    c = (torch.arange(20) - 9.5) * 4.0
    disc = ((c[:, None] ** 2 + c[None, :] ** 2) < 30 ** 2).float()
    lesion = (((c[:, None] - 8) ** 2 + (c[None, :] + 4) ** 2) < 6 ** 2).float()
    truth = (4000 * disc * (1 + 3 * lesion))[None]
    act = Volume.centered(truth, (4.0, 4.0, 4.0), unit="Bq/mL", modality="PT")
    data = simulate_acquisition(act, "small-animal", single_ring=True, view_mashing=2, n_radial=100, n_counts=1e6,
                                seed=2)
    save_acquisition(data, root / "acq")
    save(act, root / "truth.nii.gz")
    save(act.with_data(4000 * disc[None]), root / "erased.nii.gz")
    save(Volume.centered(truth[:, :16, :16], (4.0, 4.0, 4.0), unit="Bq/mL"), root / "small.nii.gz")
    save(Volume.centered(truth, (5.0, 5.0, 5.0), unit="Bq/mL"), root / "coarse.nii.gz")
    shifted = Volume(truth, (4.0, 4.0, 4.0), tuple(float(v) + 12.0 for v in act.origin_mm), act.direction, unit="Bq/mL")
    save(shifted, root / "shifted.nii.gz")
    return root


def test_cli_ranks_the_erased_lesion_worse_and_writes_the_map(case):
    runner = CliRunner()
    out = {}
    for name in ("truth", "erased"):
        r = runner.invoke(app, ["consistency", str(case / f"{name}.nii.gz"), str(case / "acq"),
                                "--out", str(case / f"out_{name}")])
        assert r.exit_code == 0, r.output
        out[name] = json.loads((case / f"out_{name}" / "consistency.json").read_text())
        m = np.load(case / f"out_{name}" / "consistency_map.npy")
        assert m.shape == tuple(out[name]["map_shape"]) and m.sum() == pytest.approx(out[name]["deviance"], rel=1e-4)
    assert out["erased"]["deviance"] > out["truth"]["deviance"]
    r = runner.invoke(app, ["consistency", str(case / "truth.nii.gz"), str(case / "acq"), "--out",
                            str(case / "out_truth")])
    assert r.exit_code == 2 and "overwrite" in r.output  # never overwrites silently


@pytest.mark.parametrize("name,msg", [("small", "image grid"), ("coarse", "voxels"), ("shifted", "placement")])
def test_cli_refuses_an_image_off_the_grid(case, name, msg):
    r = CliRunner().invoke(app, ["consistency", str(case / f"{name}.nii.gz"), str(case / "acq")])
    assert r.exit_code == 2 and msg in r.output


def test_cli_refuses_a_missing_acquisition(case):
    r = CliRunner().invoke(app, ["consistency", str(case / "truth.nii.gz"), str(case)])
    assert r.exit_code == 2 and "error" in r.output


def test_cli_names_the_file_of_a_nan_image_and_explains_an_infinite_deviance(case):
    """A NaN image gave 'the image holds NaN or inf values' without the file; an infinite deviance was unexplained."""
    truth = Volume.centered(torch.ones(1, 20, 20), (4.0, 4.0, 4.0), unit="Bq/mL")
    bad = truth.with_data(torch.full((1, 20, 20), float("nan")))
    save(bad, case / "nan.nii.gz")
    r = CliRunner().invoke(app, ["consistency", str(case / "nan.nii.gz"), str(case / "acq")])
    assert r.exit_code == 2 and "nan.nii.gz" in r.output and "NaN" in r.output, r.output
    save(truth.with_data(-torch.ones(1, 20, 20)), case / "negative.nii.gz")
    r = CliRunner().invoke(app, ["consistency", str(case / "negative.nii.gz"), str(case / "acq")])
    assert r.exit_code == 0 and "deviance is infinite" in r.output, r.output


def test_poisson_deviance_of_the_expected_data_is_zero_and_positive_otherwise():
    """D(ybar, ybar) = 0 exactly (each term 2[y log 1 - 0]); any other y gives D > 0 (Gibbs' inequality)."""
    from petspect.learned_recon.consistency import poisson_deviance_terms

    g = torch.Generator().manual_seed(0)
    ybar = torch.rand(50, 40, generator=g, dtype=torch.float64) * 20 + 0.1
    assert float(poisson_deviance_terms(ybar, ybar).abs().max()) < 1e-12
    y = torch.poisson(ybar, generator=g)
    terms = poisson_deviance_terms(y, ybar)
    assert bool((terms >= -1e-12).all()) and float(terms.sum()) > 0
    # a Poisson draw from ybar gives about one per bin (the noise floor stated in the command's help)
    assert 0.7 < float(terms.mean()) < 1.3


@pytest.mark.parametrize("damage, msg", [("weights_garbage", "not a PyTorch weights file"),
                                         ("weights_empty", "not a PyTorch weights file"),
                                         ("no_trained_for", "trained_for"), ("json_list", "not an object")])
def test_recon_model_refuses_a_damaged_model_folder_without_a_traceback(case, tmp_path, damage, msg):
    """Garbage or empty weights, a record without 'trained_for' or a JSON list were internal errors (exit 1)."""
    from petspect.learned_recon.models import MODEL_JSON, WEIGHTS, save_learned_model
    from petspect.learned_recon.unrolled import UnrolledEM
    from petspect.systems.acquisition import load_acquisition

    torch.manual_seed(0)
    folder = save_learned_model(tmp_path / "m", "unrolled", UnrolledEM(1, 2, (4, 8)), load_acquisition(case / "acq"),
                                settings={"n_blocks": 1, "n_subsets": 2, "widths": [4, 8]})
    if damage == "weights_garbage":
        (folder / WEIGHTS).write_bytes(b"garbage\n")
    elif damage == "weights_empty":
        (folder / WEIGHTS).write_bytes(b"")
    else:
        doc = json.loads((folder / MODEL_JSON).read_text())
        doc.pop("trained_for")
        (folder / MODEL_JSON).write_text(json.dumps(doc if damage == "no_trained_for" else [1, 2]))
    r = CliRunner().invoke(app, ["recon", str(case / "acq"), "--model", str(folder), "--out",
                                 str(tmp_path / "r.nii.gz")])
    assert r.exit_code == 2 and msg in r.output, r.output
    assert not (tmp_path / "r.nii.gz").exists()
