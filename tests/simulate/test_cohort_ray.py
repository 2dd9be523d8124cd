"""Cohort simulation on Ray writes the same bytes as the local executor; a missing Ray is a clear error."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from petspect.cli.main import app
from petspect.errors import InputError, MissingDependencyError
from petspect.simulate.cohort import simulate_cohort
from petspect.simulate.config import config_to_toml

from test_cohort import tiny_config  # noqa: E402  (pytest's prepend import mode puts tests/simulate on sys.path)


def _digests(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_ray_executor_writes_byte_identical_subjects(tmp_path):
    """Two subjects, a local Ray of 2 CPUs started and stopped by the command: every file's sha256 equals the
    local executor's (subject volumes, projections, records, dataset.json)."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'petspect[ray]')")
    cfg = tiny_config(subjects=2)
    local = simulate_cohort(cfg, tmp_path / "local", workers=1, show_progress=False).parent
    toml = tmp_path / "tiny.toml"
    toml.write_text(config_to_toml(cfg))
    res = CliRunner().invoke(app, ["simulate", str(toml), "--executor", "ray", "--workers", "2",
                                   "--out", str(tmp_path / "ray")])
    assert res.exit_code == 0, res.output
    assert not ray.is_initialized()  # the command shut down the Ray it started
    a, b = _digests(local), _digests(tmp_path / "ray")
    assert len([k for k in a if k.startswith("sub-001/")]) > 5 and a == b


def test_missing_ray_names_the_extra_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(MissingDependencyError, match=r"petspect\[ray\]"):
        simulate_cohort(tiny_config(subjects=1), tmp_path / "x", executor="ray", show_progress=False)
    assert not (tmp_path / "x").exists()
    res = CliRunner().invoke(app, ["simulate", "quick", "--subjects", "1", "--executor", "ray",
                                   "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "petspect[ray]" in res.output and not (tmp_path / "y").exists()


def test_executor_arguments_are_checked(tmp_path):
    with pytest.raises(InputError, match="unknown executor"):
        simulate_cohort(tiny_config(subjects=1), tmp_path / "x", executor="dask", show_progress=False)
    with pytest.raises(InputError, match="ray_address"):
        simulate_cohort(tiny_config(subjects=1), tmp_path / "x", ray_address="auto", show_progress=False)
    assert not (tmp_path / "x").exists()
