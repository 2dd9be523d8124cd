"""benchmarks/run_all.py (``make bench``): every benchmark has a quick size, and the runner reports where."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_all():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_benchmark_has_a_quick_size(capsys):
    mod = _run_all()
    names = mod.discover()
    assert names == sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py")) and len(names) >= 10
    assert set(names) == set(mod.QUICK), "give every benchmarks/bench_*.py quick arguments in run_all.QUICK"
    assert mod.main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in names)
    cmd = mod.command("bench_detector", full=False, scratch=Path("/tmp/x"))
    assert cmd[0] == sys.executable and cmd[1].endswith("bench_detector.py") and "/tmp/x" in cmd
    assert mod.command("bench_io", full=True, scratch=Path("/tmp/x"))[2:] == []


def test_unknown_names_and_a_real_run(tmp_path, capsys, monkeypatch):
    mod = _run_all()
    assert mod.main(["--only", "no-such-bench", "--out", str(tmp_path)]) == 2
    monkeypatch.setitem(mod.QUICK, "bench_io", ["--n", "8"])
    assert mod.main(["--only", "io", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"figures written to {tmp_path}" in out
    assert (tmp_path / "bench_io.txt").read_text().strip() and "| bench_io | ok |" in (tmp_path / "summary.md").read_text()
