"""PET projector benchmarks: forward + back time and throughput at realistic sizes.

Run: ``.venv/bin/python benchmarks/bench_pet.py [--quick]``; on the CPU the numba kernels run
(``PETSPECT_PET_KERNEL=torch`` measures the torch reference path instead). Prints one line per case:
LORs, samples (LORs x dominant-axis planes), forward and back time, LORs/s. The 3D clinical case
projects one ordered subset (every 19th view, as in OSEM) and extrapolates to the full sinogram.
"""

from __future__ import annotations

import argparse
import time

import torch

from petspect.geometry.pet import ImageGrid, ListmodeEvents, get_pet_scanner
from petspect.geometry.sinogram import SinogramDefinition
from petspect.projectors.pet import PetListmodeProjector, PetSinogramProjector, tof_kernel_of


def _time(fn, repeats: int = 1) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def _report(name: str, op, x: torch.Tensor, n_lor: int, extrapolate: float = 1.0, repeats: int = 1) -> None:
    y = op(x)
    t_fwd = _time(lambda: op(x), repeats)
    t_back = _time(lambda: op.adjoint(y), repeats)
    total = t_fwd + t_back
    print(f"{name:<58s} LORs {n_lor:>10,d}  fwd {t_fwd:7.2f} s  back {t_back:7.2f} s  "
          f"fwd+back {total:7.2f} s  ({n_lor / total / 1e3:7.1f} k LOR/s)"
          + (f"  -> full sinogram fwd+back ~{total * extrapolate:6.0f} s" if extrapolate != 1.0 else ""))


def bench_2d(device, tof: bool) -> None:
    sc = get_pet_scanner("wholebody", single_ring=True)
    sd = SinogramDefinition(sc, n_radial=520)
    grid = ImageGrid((1, 256, 256), (3.2, 2.7, 2.7))
    op = PetSinogramProjector(sc, sd, grid, tof=tof).to(device)
    x = torch.rand(grid.shape, generator=torch.Generator().manual_seed(0)).to(device)
    n_lor = sd.n_planes * sd.n_views * sd.n_radial
    _report(f"2D ring {sd.shape(tof)} image 256x256 {'TOF' if tof else 'non-TOF'}", op, x, n_lor, repeats=2)


def bench_3d(device, tof: bool, n_subsets: int) -> None:
    sc = get_pet_scanner("wholebody")
    sd = SinogramDefinition(sc, span=19, max_ring_diff=79, view_mashing=4, n_radial=520)
    grid = ImageGrid((80, 176, 176), (3.2625, 4.0, 4.0))
    op = PetSinogramProjector(sc, sd, grid, tof=tof).to(device).subset(0, n_subsets)
    x = torch.rand(grid.shape, generator=torch.Generator().manual_seed(0)).to(device)
    n_lor = op.out_shape[0] * op.out_shape[1] * op.out_shape[2]
    _report(f"3D Vision span19 mrd79 mash4 {sd.shape(tof)} 1/{n_subsets} views, image 80x176x176 "
            f"{'TOF' if tof else 'non-TOF'}", op, x, n_lor, extrapolate=n_subsets)


def bench_listmode(device, n_events: int) -> None:
    sc = get_pet_scanner("wholebody")
    gen = torch.Generator().manual_seed(1)
    pos = torch.as_tensor(sc.crystal_positions_mm()).reshape(-1, 3)
    pick = torch.randint(0, pos.shape[0], (n_events, 2), generator=gen)
    keep = (pos[pick[:, 0], :2] - pos[pick[:, 1], :2]).norm(dim=1) > 2 * 300.0  # LORs through the body
    events = ListmodeEvents(pos[pick[keep, 0]], pos[pick[keep, 1]],
                            torch.randint(0, sc.n_tof_bins, (int(keep.sum()),), generator=gen))
    grid = ImageGrid((80, 176, 176), (3.2625, 4.0, 4.0))
    op = PetListmodeProjector(events, None, grid, tof_kernel=tof_kernel_of(sc)).to(device)
    x = torch.rand(grid.shape, generator=torch.Generator().manual_seed(0)).to(device)
    _report("list-mode TOF, Vision crystals, image 80x176x176", op, x, len(events))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="smaller 3D subset and list-mode")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--cases", nargs="+", default=["2d", "2d-tof", "3d", "3d-tof", "listmode"],
                        help="cases to run (default all: 2d 2d-tof 3d 3d-tof listmode)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    cases = {"2d": lambda: bench_2d(device, tof=False), "2d-tof": lambda: bench_2d(device, tof=True),
             "3d": lambda: bench_3d(device, tof=False, n_subsets=95 if args.quick else 19),
             "3d-tof": lambda: bench_3d(device, tof=True, n_subsets=95),
             "listmode": lambda: bench_listmode(device, 20_000 if args.quick else 200_000)}
    unknown = sorted(set(args.cases) - set(cases))
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {list(cases)}")
    for name in args.cases:
        cases[name]()


if __name__ == "__main__":
    main()
