"""Seeded mutation fuzzing of every reader: only PetspectError escapes, inputs are never changed, no hangs.

A few hundred cases by default (seconds); set ``PETSPECT_FUZZ_CASES`` (and ``PETSPECT_FUZZ_SEED``) for
thousands, or run ``python -m petspect.testing.fuzz --cases 5000``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from petspect.testing.fuzz import TARGETS, mutate, run_fuzz

N_CASES = int(os.environ.get("PETSPECT_FUZZ_CASES", "360"))
SEED = int(os.environ.get("PETSPECT_FUZZ_SEED", "20261205"))


def test_every_reader_fails_cleanly_on_mutated_input(tmp_path):
    report = run_fuzz(N_CASES, seed=SEED, time_limit_s=20.0, workdir=tmp_path)
    assert len(report.outcomes) == N_CASES
    assert {o.target for o in report.outcomes} == {t.name for t in TARGETS}
    assert not report.failures(), report.summary()
    counts = report.counts
    assert counts["petspect"] > 0 and counts["ok"] > 0  # the mutations reach both outcomes


def test_mutations_are_reproducible(tmp_path):
    p = tmp_path / "f.hv"
    text = "!INTERFILE :=\nname of data file := f.v\n!matrix size [1] := 4\n!END OF INTERFILE :=\n"
    out = []
    for _ in range(2):
        p.write_text(text)
        mutate(p, np.random.default_rng([3, 7]))
        out.append(p.read_bytes())
    assert out[0] == out[1] and out[0] != text.encode()


@pytest.mark.parametrize("target", [t.name for t in TARGETS])
def test_unmutated_samples_load(tmp_path, target):
    t = next(t for t in TARGETS if t.name == target)
    t.read(t.build(tmp_path))
