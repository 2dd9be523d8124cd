import tomllib

from typer.testing import CliRunner

from petspect.cli.main import app

runner = CliRunner()


def test_show_config_prints_loadable_toml():
    res = runner.invoke(app, ["simulate", "quick", "--show-config", "--subjects", "3"])
    assert res.exit_code == 0, res.output
    data = tomllib.loads(res.output)
    assert data["subjects"] == 3 and data["phantom"]["kind"] == "torso"


def test_bad_preset_and_missing_out(tmp_path):
    res = runner.invoke(app, ["simulate", "no-such-preset", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "unknown cohort preset" in res.output and "quick" in res.output
    res = runner.invoke(app, ["simulate", "quick"])
    assert res.exit_code == 2 and "--out" in res.output
    res = runner.invoke(app, ["dataset", "check", str(tmp_path)])
    assert res.exit_code == 2 and "dataset.json" in res.output


def test_import_cases_into_dataset_layout(tmp_path):
    import torch

    from petspect.io import save
    from petspect.volume import Volume

    for case in ("p1", "p2", "p3"):
        d = tmp_path / "src" / case
        ref = Volume.centered(torch.rand(4, 8, 8, generator=torch.Generator().manual_seed(1)), (3, 2, 2),
                              unit="Bq/mL", modality="PT")
        save(ref, d / "recon_d100_osem_ac.nii.gz")
        low = Volume.centered(torch.rand(4, 4, 4), (3, 4, 4), unit="Bq/mL", modality="PT")  # other grid
        save(low, d / "recon_d010_osem_ac.nii.gz")
        save(ref.with_data((ref.data > 0.5).to(torch.int16), unit="label"), d / "labels.nii.gz")
    res = runner.invoke(app, ["dataset", "import", str(tmp_path / "src"), "--out", str(tmp_path / "ds"),
                              "--reference-key", "recon_d100_osem_ac"])
    assert res.exit_code == 0, res.output
    from petspect.io import load

    low = load(tmp_path / "ds" / "sub-000" / "recon_d010_osem_ac.nii.gz")
    assert low.shape == (4, 8, 8)  # resampled onto the reference grid
    res = runner.invoke(app, ["dataset", "check", str(tmp_path / "ds")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["dataset", "import", str(tmp_path / "src"), "--out", str(tmp_path / "ds"),
                              "--reference-key", "recon_d100_osem_ac"])
    assert res.exit_code == 2 and "not empty" in res.output


def test_an_explicit_device_is_used_or_refused(tmp_path, monkeypatch):
    """``--device cuda`` is refused by ``petspect simulate`` (cohorts are simulated on the CPU), not ignored;
    ``--device cpu`` and ``auto`` simulate on the CPU and say so."""
    import torch

    import petspect.simulate.cohort as cohort

    seen = {}
    monkeypatch.setattr(cohort, "simulate_cohort", lambda cfg, out, **kw: seen.update(kw) or out)
    for flag in ("auto", "cpu"):
        res = runner.invoke(app, ["--device", flag, "simulate", "quick", "--subjects", "1", "--out", str(tmp_path / "x")])
        assert res.exit_code == 0, res.output
        assert "simulating on cpu" in res.output and seen["device"] == torch.device("cpu")
    res = runner.invoke(app, ["--device", "cuda", "simulate", "quick", "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "cuda" in res.output and not (tmp_path / "y").exists()
    if not torch.cuda.is_available():
        res = runner.invoke(app, ["--device", "cuda", "demo", "--out", str(tmp_path / "z")])
        assert res.exit_code == 2 and "CUDA is not available" in res.output and not (tmp_path / "z").exists()
