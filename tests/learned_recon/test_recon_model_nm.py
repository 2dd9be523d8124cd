"""``petspect recon NM --model M --out OUT`` on measured SPECT in DICOM NM TOMO form.

The NM TOMO files are built here (tests/io/dicom_factory.py): a dual-head Siemens-like LEHR acquisition of a
centred cylinder (every view the same Gaussian profile, Poisson counts) with a photopeak and a lower scatter window.
The models are made for the system read from such a file (the fingerprint the CLI checks), untrained: the
projection denoiser's residual U-Net starts as the identity (the inverse Anscombe adds 1/4 count per bin), the
unrolled network starts as OSEM, so the outputs can be compared with plain OSEM of the same file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.io import load

sys.path.insert(0, str(Path(__file__).parents[1] / "io"))
import dicom_factory as fac  # noqa: E402

ROWS, COLS, VIEWS_PER_HEAD = 8, 16, 8


def write_nm(folder: Path, *, cols: int = COLS, em=(126.0, 154.0), peak_counts: float = 40.0, seed: int = 0) -> Path:
    """One NM TOMO instance: 2 heads x 8 views (22.5 deg), EM and SC windows, Poisson counts."""
    ds = fac.nm_tomo(n_views=VIEWS_PER_HEAD, rows=ROWS, cols=cols, step_deg=22.5, radial=((200.0,), (200.0,)),
                     windows=(("EM", *em), ("SC", 110.0, em[0])))
    rng = np.random.default_rng(seed)
    xx = np.arange(cols)[None, :].repeat(ROWS, 0)
    profile = peak_counts * np.exp(-((xx - (cols - 1) / 2) ** 2) / (2 * 3.0 ** 2))
    frames = [rng.poisson(profile * (1.0 if w == 0 else 0.1)).astype(np.uint16)
              for w in range(2) for _d in range(2) for _v in range(VIEWS_PER_HEAD)]
    fac.set_pixels(ds, np.stack(frames))
    fac.write([ds], folder)
    return folder / "im0000.dcm"


def _acquisition(path: Path):
    """The acquisition as ``petspect recon`` reads it (defaults: header's collimator, TEW, no mu)."""
    from petspect.io.convert import read_any
    from petspect.simulate.measured import spect_acquisition

    return spect_acquisition(read_any(path), scatter="tew", source=path)


@pytest.fixture(scope="module")
def nm(tmp_path_factory):
    from petspect.learned_recon.models import save_learned_model
    from petspect.learned_recon.projection_denoise import ProjectionDenoiser
    from petspect.learned_recon.unrolled import UnrolledEM

    root = tmp_path_factory.mktemp("nm")
    path = write_nm(root / "study")
    acq = _acquisition(path)
    torch.manual_seed(0)
    save_learned_model(root / "proj_model", "projection_unet", ProjectionDenoiser((4, 8), 1.0), acq,
                       settings={"widths": [4, 8]}, recon_spec={"iterations": 2, "subsets": 4},
                       training_inputs=[acq])
    save_learned_model(root / "unrolled_model", "unrolled", UnrolledEM(2, 4, (4, 8)), acq,
                       settings={"n_blocks": 2, "n_subsets": 4, "widths": [4, 8]})
    return root, path


def test_projection_model_reconstructs_measured_nm_and_writes_the_consistency_map(nm):
    root, path = nm
    runner = CliRunner()
    out = root / "out" / "img.nii.gz"
    out.parent.mkdir()
    r = runner.invoke(app, ["recon", str(path), "--model", str(root / "proj_model"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    cons = json.loads((out.parent / "img_consistency.json").read_text())
    cmap = np.load(out.parent / "img_consistency_map.npy")
    assert cmap.shape == tuple(cons["map_shape"]) == (ROWS, 2 * VIEWS_PER_HEAD)  # detector rows x views
    assert np.isfinite(cons["deviance_per_bin"]) and cons["deviance_per_bin"] > 0 and cons["kind"] == "projection_unet"
    img = load(out)
    assert img.shape == (ROWS, COLS, COLS)
    # plain OSEM of the same file with the model's settings: the untrained denoiser is the identity + 1/4 count
    ref_path = root / "out" / "ref.nii.gz"
    r = runner.invoke(app, ["recon", str(path), "--iterations", "2", "--subsets", "4", "--out", str(ref_path)])
    assert r.exit_code == 0, r.output
    ref = load(ref_path).data
    hot = ref > 0.5 * ref.max()
    ratio = float(img.data[hot].sum() / ref[hot].sum())
    assert 0.98 < ratio < 1.1, ratio
    # the same output again is refused (never overwritten silently), before any work
    r = runner.invoke(app, ["recon", str(path), "--model", str(root / "proj_model"), "--out", str(out)])
    assert r.exit_code == 2 and "overwrite" in r.output


def test_unrolled_model_on_measured_nm_is_osem_when_untrained(nm):
    root, path = nm
    runner = CliRunner()
    out = root / "unrolled.nii.gz"
    r = runner.invoke(app, ["recon", str(path), "--model", str(root / "unrolled_model"), "--out", str(out)])
    assert r.exit_code == 0, r.output
    ref_path = root / "osem_2x4.nii.gz"
    r = runner.invoke(app, ["recon", str(path), "--iterations", "2", "--subsets", "4", "--out", str(ref_path)])
    assert r.exit_code == 0, r.output
    img, ref = load(out).data, load(ref_path).data
    torch.testing.assert_close(img, ref, rtol=1e-3, atol=1e-3 * float(ref.max()))
    assert (root / "unrolled_consistency.json").is_file()


@pytest.mark.parametrize("kind,msg", [("matrix", "prompts_shape"), ("window", "window_kev"),
                                     ("counts", "count level")])
def test_a_model_for_another_matrix_window_or_count_level_is_refused(nm, tmp_path, kind, msg):
    root, _ = nm
    other = {"matrix": dict(cols=20), "window": dict(em=(129.0, 151.0)), "counts": dict(peak_counts=400.0)}[kind]
    path = write_nm(tmp_path / kind, **other)
    out = tmp_path / "img.nii.gz"
    r = CliRunner().invoke(app, ["recon", str(path), "--model", str(root / "proj_model"), "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert msg in r.output and "trained for another acquisition" in r.output and "Traceback" not in r.output
    assert not out.exists() and not (tmp_path / "img_consistency.json").exists()
