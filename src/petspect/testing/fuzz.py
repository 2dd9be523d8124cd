"""A seeded mutation fuzzer over every petspect reader.

Each case copies one valid sample (:mod:`petspect.testing.samples`), mutates one of its files, hashes
every file, runs the reader, hashes again and records the outcome:

- ``ok``: the reader returned;
- ``petspect``: it raised a :class:`~petspect.errors.PetspectError` (a clean refusal);
- ``escape``: any other exception (a bug: a traceback for the user);
- ``hang``: it ran past the per-case time limit;
- ``modified``: the reader changed a file it read (checked on every case).

Mutations are byte level (bit flips, interesting bytes and integers, truncation, insertion, zeroed
runs), text level for headers and JSON (a value replaced by a hostile one, lines deleted, duplicated
or swapped) and DICOM level (an element's value replaced in place by garbage of the same length, or
its VR code replaced). Everything is drawn from ``numpy.random.default_rng([seed, case])``, so a case
is rebuilt exactly from its number.

Command line (thousands of cases on demand)::

    python -m petspect.testing.fuzz --cases 3000 --seed 1

The test suite runs a few hundred (``tests/fuzz``; ``PETSPECT_FUZZ_CASES`` raises the count).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import shutil
import signal
import struct
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from petspect._fileio import MARKER_NAME
from petspect.errors import PetspectError
from petspect.testing import samples

HOSTILE_VALUES = ["", "abc", "nan", "inf", "-inf", "-1", "0", "1e309", "-0", "99999999999999999999", "1.5.2",
                  "{1,2", "}", "../../../../etc/passwd", "/dev/zero", "\x00\x00", "1\\2\\3", "LITTLEENDIAN",
                  "unsigned integer", "8", "2147483648", "-2147483649", "1e-320", "0x10", "[", "null", "true"]
INTERESTING_INTS = [0, 1, -1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
TEXT_SUFFIXES = (".hv", ".hs", ".json")


# --------------------------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class Target:
    """A reader and the sample it is fuzzed with."""

    name: str
    build: Callable[[Path], Path]
    read: Callable[[Path], Any]


def _load(path: Path) -> Any:
    from petspect.io import load

    return load(path)


def _load_suv(path: Path) -> Any:
    from petspect.io import load

    return load(path, suv="bw")


def _projections(path: Path) -> Any:
    from petspect.io.convert import read_any

    return read_any(path)


def _rtstruct(path: Path) -> Any:
    from petspect.io import read_rtstruct

    return read_rtstruct(path, samples.reference_volume())


def _model(path: Path) -> Any:
    from petspect.train.model_io import load_model

    return load_model(path)


def _acquisition(path: Path) -> Any:
    from petspect.simulate.acquisition import load_acquisition

    return load_acquisition(path)


def _dataset(path: Path) -> Any:
    from petspect.simulate.layout import check_dataset

    return check_dataset(path)


def _convert_to(suffix: str) -> Callable[[Path], Any]:
    """``petspect.io.convert.convert`` into a new temporary output (outside the case folder, then removed)."""

    def run(path: Path) -> Any:
        from petspect.io.convert import convert

        out = Path(tempfile.mkdtemp(prefix="petspect-fuzz-out-"))
        try:
            return convert(path, out / f"out{suffix}")
        finally:
            shutil.rmtree(out, ignore_errors=True)

    return run


def _describe(path: Path) -> Any:
    from petspect.io.convert import describe

    return describe(path)


TARGETS: tuple[Target, ...] = (
    Target("nifti", samples.nifti, _load),
    Target("nifti_gz", lambda d: samples.nifti(d, gz=True), _load),
    Target("interfile_image", samples.interfile_image, _load),
    Target("interfile_projections", samples.interfile_projections, _projections),
    Target("dicom_pet", samples.dicom_pet, _describe),
    Target("dicom_pet_suv", samples.dicom_pet, _load_suv),
    Target("dicom_ct", samples.dicom_ct, _load),
    Target("dicom_nm_recon", samples.dicom_nm_recon, _load),
    Target("dicom_nm_tomo", samples.dicom_nm_tomo, _projections),
    Target("dicom_rtstruct", samples.dicom_rtstruct, _rtstruct),
    Target("model_folder", samples.model_folder, _model),
    Target("acquisition_folder", samples.acquisition_folder, _acquisition),
    Target("dataset_folder", samples.dataset_folder, _dataset),
    Target("convert_dicom_pet_to_nifti", samples.dicom_pet, _convert_to(".nii.gz")),
    Target("convert_nifti_to_dicom", samples.nifti, _convert_to("")),
    Target("convert_interfile_to_dicom", samples.interfile_image, _convert_to("")),
    Target("convert_nm_tomo_to_interfile", samples.dicom_nm_tomo, _convert_to(".hs")),
)


# --------------------------------------------------------------------------------------------- mutations
def _bytes_mutation(data: bytearray, rng: np.random.Generator) -> str:
    n = len(data)
    op = int(rng.integers(7))
    if n == 0 or op == 0:
        pos = int(rng.integers(n + 1))
        data[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        return "insert"
    if op == 1:
        for _ in range(int(rng.integers(1, 9))):
            pos = int(rng.integers(n))
            data[pos] ^= 1 << int(rng.integers(8))
        return "bitflip"
    if op == 2:
        pos = int(rng.integers(n))
        data[pos] = int(rng.choice([0, 0xFF, 0x7F, 0x80, 0x20, 0x2E, 0x5C]))
        return "byte"
    if op == 3:
        pos = int(rng.integers(max(1, n - 4)))
        value = int(rng.choice(INTERESTING_INTS)) & 0xFFFFFFFF
        data[pos:pos + 4] = struct.pack("<I" if rng.integers(2) else ">I", value)[: max(0, n - pos)]
        return "int32"
    if op == 4:
        del data[int(rng.integers(n)):]
        return "truncate"
    if op == 5:
        pos = int(rng.integers(n))
        data[pos:pos + int(rng.integers(1, 256))] = b"\0" * min(n - pos, int(rng.integers(1, 256)))
        return "zeros"
    a = int(rng.integers(n))
    chunk = data[a:a + int(rng.integers(1, 128))]
    pos = int(rng.integers(n))
    data[pos:pos] = chunk
    return "duplicate"


def _text_mutation(data: bytearray, rng: np.random.Generator) -> str:
    lines = bytes(data).decode("utf-8", "replace").split("\n")
    op = int(rng.integers(4))
    i = int(rng.integers(len(lines)))
    if op == 0:
        sep = ":=" if ":=" in lines[i] else ":" if ":" in lines[i] else None
        if sep is None:
            lines[i] = str(rng.choice(HOSTILE_VALUES))
        else:
            key = lines[i].split(sep, 1)[0]
            value = str(rng.choice(HOSTILE_VALUES))
            lines[i] = f"{key}{sep} {value}" if sep == ":=" else f'{key}{sep} "{value}",'
            if sep == ":" and rng.integers(2):
                lines[i] = f"{key}{sep} {rng.choice(['0', '-1', '1e309', '[]', '{}', 'null', '1e9', '[1e9]'])},"
        result = "value"
    elif op == 1:
        del lines[i]
        result = "delete-line"
    elif op == 2:
        lines.insert(i, lines[i])
        result = "duplicate-line"
    else:
        j = int(rng.integers(len(lines)))
        lines[i], lines[j] = lines[j], lines[i]
        result = "swap-lines"
    data[:] = "\n".join(lines).encode("utf-8")
    return result


def _dicom_mutation(data: bytearray, rng: np.random.Generator) -> str:
    """Replace one element's value in place (same length, so the file stays parseable) or its VR code."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(bytes(data)), stop_before_pixels=True)
    except Exception:
        return _bytes_mutation(data, rng)
    elems = [e for e in [*ds.file_meta, *ds.iterall()] if e.VR not in ("SQ", "OB", "OW", "UN")]
    if not elems:
        return _bytes_mutation(data, rng)
    elem = elems[int(rng.integers(len(elems)))]
    tag = struct.pack("<HH", elem.tag.group, elem.tag.element)
    pos = data.find(tag + elem.VR.encode("ascii"))
    if pos < 0:
        return _bytes_mutation(data, rng)
    if rng.integers(4) == 0:
        vr = rng.choice([b"??", b"XX", b"UN", b"SQ", b"OB", b"DS", b"US", b"UL", b"FD", b"\0\0"])
        data[pos + 4:pos + 6] = bytes(vr)
        return f"vr {elem.keyword or elem.tag}"
    long_vr = elem.VR in ("OD", "OF", "OL", "OV", "UC", "UR", "UT", "SV", "UV")
    start = pos + (12 if long_vr else 8)
    length = (struct.unpack("<I", data[pos + 8:pos + 12])[0] if long_vr
              else struct.unpack("<H", data[pos + 6:pos + 8])[0])
    if length == 0 or start + length > len(data):
        return _bytes_mutation(data, rng)
    if rng.integers(2):
        text = str(rng.choice(HOSTILE_VALUES)).encode("latin-1")
        value = (text * (length // max(len(text), 1) + 1))[:length] if text else b" " * length
        if rng.integers(2):
            value = text[:length].ljust(length, b" ")
    else:
        value = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    data[start:start + length] = value
    return f"value {elem.keyword or elem.tag}"


def mutate(path: Path, rng: np.random.Generator) -> str:
    """Mutate the file ``path`` in place; returns a short description of the mutation."""
    data = bytearray(path.read_bytes())
    suffix = "".join(path.suffixes).lower()
    is_dicom = len(data) > 132 and data[128:132] == b"DICM"
    if is_dicom and rng.integers(3) < 2:
        how = _dicom_mutation(data, rng)
    elif suffix.endswith(TEXT_SUFFIXES) and rng.integers(3) < 2:
        how = _text_mutation(data, rng)
    else:
        how = _bytes_mutation(data, rng)
    path.write_bytes(bytes(data))
    return how


# --------------------------------------------------------------------------------------------- running
@dataclass
class Outcome:
    """What one case did."""

    case: int
    target: str
    file: str
    mutation: str
    result: str  # ok, petspect, escape, hang, modified
    detail: str = ""


@dataclass
class FuzzReport:
    """All outcomes of a run, with counts by result."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def counts(self) -> Counter:
        return Counter(o.result for o in self.outcomes)

    def failures(self) -> list[Outcome]:
        """Cases that escaped, hung or modified their input."""
        return [o for o in self.outcomes if o.result in ("escape", "hang", "modified")]

    def summary(self) -> str:
        lines = [f"{len(self.outcomes)} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))]
        kinds = Counter((o.target, o.result, o.detail.split("\n", 1)[0][:160]) for o in self.failures())
        for (target, result, detail), n in kinds.most_common():
            lines.append(f"  {n:4d} x {target} {result}: {detail}")
        return "\n".join(lines)


class _Timeout(BaseException):
    """Raised in the reader when a case runs past its time limit (a BaseException: no reader catches it)."""


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    import threading

    if seconds <= 0 or not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield  # no timer outside the main thread (signals are delivered there only)
        return

    def _raise(signum, frame):
        raise _Timeout

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _hashes(root: Path) -> dict[str, str]:
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _where(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    frames = [f for f in tb if "petspect" in f.filename] or tb
    f = frames[-1] if frames else None
    loc = f"{Path(f.filename).name}:{f.lineno}" if f else "?"
    return f"{type(exc).__name__} at {loc}: {str(exc)[:200]}"


def run_fuzz(n_cases: int, *, seed: int = 0, targets: tuple[Target, ...] | None = None,
             time_limit_s: float = 10.0, workdir: str | Path | None = None,
             progress: Callable[[int, Outcome], None] | None = None) -> FuzzReport:
    """Run ``n_cases`` cases, the targets taken in turn.

    Parameters
    ----------
    n_cases : int
        Number of mutated inputs.
    seed : int
        Seed of the mutations (case ``i`` uses ``default_rng([seed, i])``).
    targets : tuple of Target, optional
        Readers to fuzz (default: :data:`TARGETS`).
    time_limit_s : float
        Per-case limit; a case running longer counts as a hang.
    workdir : path, optional
        Where seeds and cases are written (default: a temporary folder, removed afterwards).
    """
    targets = tuple(targets or TARGETS)
    report = FuzzReport()
    with tempfile.TemporaryDirectory(dir=workdir, prefix="petspect-fuzz-") as tmp:
        root = Path(tmp)
        seeds: dict[str, Path] = {}
        for t in targets:
            folder = root / "seeds" / t.name
            folder.mkdir(parents=True)
            seeds[t.name] = t.build(folder)
        for i in range(n_cases):
            t = targets[i % len(targets)]
            rng = np.random.default_rng([seed, i])
            case_dir = root / "case"
            if case_dir.exists():
                shutil.rmtree(case_dir)
            case_dir.mkdir()
            seed_p = seeds[t.name]
            case_p = case_dir / seed_p.name
            (shutil.copytree if seed_p.is_dir() else shutil.copy2)(seed_p, case_p)
            files = [case_p] if case_p.is_file() else sorted(p for p in case_p.rglob("*") if p.is_file())
            sibling = [p for p in case_dir.iterdir() if p != case_p]
            for extra in seed_p.parent.iterdir():  # Interfile data files live beside the header
                if extra.is_file() and extra != seed_p and extra.stem == seed_p.stem:
                    shutil.copy2(extra, case_dir / extra.name)
                    sibling.append(case_dir / extra.name)
            files += [p for p in sibling if p.is_file()]
            files = [p for p in files if p.name != MARKER_NAME] or files  # petspect's own marker: not read
            victim = files[int(rng.integers(len(files)))]
            how = mutate(victim, rng)
            before = _hashes(case_dir)
            result, detail = "ok", ""
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    with _time_limit(time_limit_s):
                        t.read(case_p)
            except _Timeout:
                result, detail = "hang", f"over {time_limit_s} s"
            except PetspectError as exc:
                result, detail = "petspect", str(exc)[:200]
            except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
                result, detail = "escape", _where(exc)
            if _hashes(case_dir) != before:
                result, detail = "modified", f"input changed ({detail})"
            out = Outcome(i, t.name, victim.relative_to(case_dir).as_posix(), how, result, detail)
            report.outcomes.append(out)
            if progress is not None:
                progress(i, out)
    return report


def main(argv: list[str] | None = None) -> int:
    """``python -m petspect.testing.fuzz``: run the fuzzer and print a summary; exit 1 on any failure."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit-s", type=float, default=10.0)
    ap.add_argument("--targets", nargs="*", help=f"subset of {[t.name for t in TARGETS]}")
    args = ap.parse_args(argv)
    targets = tuple(t for t in TARGETS if not args.targets or t.name in args.targets)
    t0 = time.perf_counter()
    report = run_fuzz(args.cases, seed=args.seed, targets=targets, time_limit_s=args.time_limit_s)
    print(report.summary())
    print(f"{time.perf_counter() - t0:.1f} s")
    return 1 if report.failures() else 0


if __name__ == "__main__":
    raise SystemExit(main())
