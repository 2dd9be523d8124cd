"""Run every benchmark (``benchmarks/bench_*.py``), each in its own process, and keep what it prints.

``make bench`` calls this file. By default each benchmark runs at a *quick* size (arguments in
:data:`QUICK`, chosen so that the whole set finishes in minutes on a 2-core CPU); those figures show
that every benchmark works and roughly how fast things are, but the figures recorded in BENCHMARKS.md
come from the full sizes (``--full``: each benchmark's own defaults, which can take hours on a CPU).

    python benchmarks/run_all.py                  # every benchmark, quick sizes
    python benchmarks/run_all.py --list           # the benchmarks and their quick arguments
    python benchmarks/run_all.py --only pet spect # some of them (names without bench_ and .py)
    python benchmarks/run_all.py --full --out bench_out --timeout 7200

Each benchmark's output goes to ``OUT/<name>.txt`` (OUT defaults to ``bench_out/``) and a summary table
(name, exit code, seconds, output file) to ``OUT/summary.md``; the last line printed says where. The
exit code is 1 when any benchmark failed or timed out. A ``bench_*.py`` without an entry in
:data:`QUICK` is run with its own defaults and flagged in the summary.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Quick arguments per benchmark; ``{out}`` is replaced by the benchmark's own scratch folder.
QUICK: dict[str, list[str]] = {
    "bench_berg_cherry": ["--out", "{out}", "--pairs", "1000"],
    "bench_cad": ["--out", "{out}/study", "--preset", "tiny", "--tasks", "pd"],
    "bench_denoise": ["--shape", "8", "32", "32", "--epochs", "1", "--device", "cpu"],
    "bench_detector": ["--out", "{out}", "--preset", "quick"],
    "bench_dosimetry": ["--half-width", "2", "--recompute-electrons", "20000"],
    "bench_io": ["--n", "32"],
    "bench_kinetics": ["--n-noise", "20", "--n-train", "60", "--n-test", "20", "--epochs", "50"],
    "bench_learned_recon": ["--preset", "tiny", "--out", "{out}/study"],
    "bench_organs": ["--simulate", "{out}/data", "--subjects", "4", "--epochs", "1", "--filters", "4", "8", "16", "32"],
    "bench_pet": ["--quick", "--device", "cpu", "--cases", "2d", "3d", "listmode"],
    "bench_pet_osem_wholebody": ["--shape", "16", "40", "40", "--voxel-mm", "8", "--iterations", "1",
                                 "--view-mashing", "20"],
    "bench_pet_vs_parallelproj": ["--lors", "20000", "--tof-lors", "5000", "--repeats", "1"],
    "bench_phantoms": ["--repeats", "1"],
    "bench_radiomics": ["--n-lesions", "20", "--radii-mm", "10", "--deep-epochs", "2"],
    "bench_registration": ["--subjects", "3", "--shape", "12", "40", "40", "--pairs", "4", "--epochs", "1"],
    "bench_recon": ["quant", "spect64"],
    "bench_simulate": ["--presets", "quick", "--subjects", "1", "--workers", "1"],
    "bench_sss": ["--rings", "4", "--nxy", "32"],
    "bench_spect": ["--size", "32", "--views", "16", "--repeat", "1"],
    "bench_spect_scatter": ["--preset", "tiny"],
    "bench_timing_limits": ["--pairs", "200", "--presets", "quick"],
    "bench_torso": ["--repeat", "1"],
    "bench_train": ["--quick", "--steps", "1", "--device", "cpu"],
}


def discover(folder: Path = HERE) -> list[str]:
    """Names of the benchmark scripts (``bench_*.py``) in ``folder``, sorted."""
    return sorted(p.stem for p in folder.glob("bench_*.py"))


def command(name: str, *, full: bool, scratch: Path) -> list[str]:
    """The command line that runs benchmark ``name`` (quick arguments unless ``full``)."""
    args = [] if full else [a.replace("{out}", str(scratch)) for a in QUICK.get(name, [])]
    if full and "{out}" in " ".join(QUICK.get(name, [])):  # a benchmark that needs an output folder
        args = ["--out", str(scratch)]
    return [sys.executable, str(HERE / f"{name}.py"), *args]


def run(name: str, out: Path, *, full: bool, timeout_s: float) -> tuple[int | None, float, Path]:
    """Run one benchmark; returns (exit code or None on timeout, seconds, output file)."""
    log = out / f"{name}.txt"
    scratch = out / f"{name}_files"
    scratch.mkdir(parents=True, exist_ok=True)
    cmd = command(name, full=full, scratch=scratch)
    env = {**os.environ, "PETSPECT_NO_PROGRESS": "1", "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        try:
            code: int | None = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=HERE.parent, env=env,
                                              timeout=timeout_s).returncode
        except subprocess.TimeoutExpired:
            code = None
            fh.write(f"\n[run_all] timed out after {timeout_s:.0f} s\n")
    return code, time.perf_counter() - t0, log


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench_out"), help="folder for the outputs (default bench_out)")
    ap.add_argument("--full", action="store_true", help="each benchmark's full default size (slow on a CPU)")
    ap.add_argument("--only", nargs="+", default=None, help="benchmark names (e.g. pet spect or bench_pet)")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and their quick arguments, then stop")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per benchmark (default 900)")
    args = ap.parse_args(argv)
    names = discover()
    if args.list:
        for name in names:
            quick = " ".join(QUICK[name]) if name in QUICK else "(no quick entry: its defaults)"
            print(f"{name:22s} quick: {quick}")
        return 0
    if args.only:
        wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in args.only}
        unknown = sorted(wanted - set(names))
        if unknown:
            print(f"error: unknown benchmarks {unknown}; choose from {names}", file=sys.stderr)
            return 2
        names = [n for n in names if n in wanted]
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    size = "full" if args.full else "quick"
    for name in names:
        print(f"[run_all] {name} ({size}) ...", flush=True)
        code, seconds, log = run(name, out, full=args.full, timeout_s=args.timeout)
        status = "ok" if code == 0 else ("timed out" if code is None else f"exit {code}")
        if name not in QUICK and not args.full:
            status += " (no quick entry)"
        print(f"[run_all] {name}: {status} in {seconds:.0f} s -> {log}", flush=True)
        rows.append((name, status, seconds, log))
    lines = [f"# Benchmarks ({size} sizes), {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPU cores", "",
             "| benchmark | status | seconds | output |", "|---|---|---|---|"]
    lines += [f"| {n} | {s} | {sec:.0f} | {log.name} |" for n, s, sec, log in rows]
    (out / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    failed = [n for n, s, _, _ in rows if not s.startswith("ok")]
    print(f"[run_all] figures written to {out}/<benchmark>.txt, summary in {out / 'summary.md'}"
          f"{'; failed: ' + ', '.join(failed) if failed else ''}. Record full-size figures in BENCHMARKS.md.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
