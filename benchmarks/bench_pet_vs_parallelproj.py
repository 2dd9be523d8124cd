"""petspect's Joseph PET projector side by side with libparallelproj's C++/OpenMP core, same run.

Run (build the peer first, outside the repository; it is a measuring instrument, never a dependency)::

    bash ../shared/peers/libparallelproj/build.sh /tmp/pp/libparallelproj.so
    PETSPECT_NO_PROGRESS=1 .venv/bin/python benchmarks/bench_pet_vs_parallelproj.py \\
        --peer /tmp/pp/libparallelproj.so --threads 2 --repeats 3

Both libraries project the same LORs through the same image with the same thread count, in one
process, each timing interleaved with the other's (so machine load hits both alike); the median of
``--repeats`` runs is reported. Cases:

* non-TOF: 1.5 M random oblique LORs between crystals of a 32-ring scanner (R 350 mm, 600 crystals
  per ring, 4 mm rings, every LOR through the image's transaxial square), image 128 x 128 x 64
  (x, y, z) of 2 mm; petspect through :class:`PetListmodeProjector` (world mm in, as a user calls it);
* TOF sinogram (``--tof-lors`` of those LORs, 33 bins of 143 ps, 214 ps FWHM: the Vision preset),
  petspect through :func:`joseph_forward` / :func:`joseph_backward` with the scanner's TOF kernel;
* TOF list-mode (the same LORs, one random TOF bin each near the LOR centre) through
  :class:`PetListmodeProjector`.

Agreement is the relative L2 difference ``|a - b| / |b|``: forward on an image whose outermost voxel
layer is zero, back projections on the interior (outermost layer left out): libparallelproj only
samples planes whose centre lies inside the image box, petspect also the planes within one voxel
outside the box, where bilinear interpolation still reaches the outer layer. libparallelproj
renormalises its TOF weights (to their sum; list-mode: to the sum over planes), petspect uses the
bin-integrated Gaussian as it is, so TOF figures agree to ~1e-3, not to float rounding.
Without ``--peer`` (or when the library is missing) only petspect runs and the peer is skipped with a
message. The first call of each petspect kernel compiles it (cached on disk afterwards); that time
is printed and not counted.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

N_RINGS, RADIUS_MM, N_CRYSTALS, RING_MM = 32, 350.0, 600, 4.0
SHAPE_ZYX, VOXEL_MM = (64, 128, 128), 2.0
TOF_FWHM_PS, TOF_BIN_PS, N_TOF = 214.0, 143.0, 33


def _random_lors(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """LPS end points (n, 3) x 2 of random crystal pairs whose LOR crosses the image's transaxial square."""
    rng = np.random.default_rng(seed)
    half = SHAPE_ZYX[2] * VOXEL_MM / 2.0
    out_a, out_b, have = [], [], 0
    while have < n:
        m = 2 * n
        ca, cb = rng.integers(0, N_CRYSTALS, m), rng.integers(0, N_CRYSTALS, m)
        ra, rb = rng.integers(0, N_RINGS, m), rng.integers(0, N_RINGS, m)
        pa, pb = 2 * np.pi * ca / N_CRYSTALS, 2 * np.pi * cb / N_CRYSTALS
        a = np.stack([RADIUS_MM * np.cos(pa), RADIUS_MM * np.sin(pa), (ra - (N_RINGS - 1) / 2) * RING_MM], 1)
        b = np.stack([RADIUS_MM * np.cos(pb), RADIUS_MM * np.sin(pb), (rb - (N_RINGS - 1) / 2) * RING_MM], 1)
        # distance of the transaxial line from the axis below half the image width: it crosses the image
        d = b[:, :2] - a[:, :2]
        dist = np.abs(a[:, 0] * d[:, 1] - a[:, 1] * d[:, 0]) / np.maximum(np.linalg.norm(d, axis=1), 1e-9)
        keep = (dist < half) & (ca != cb)
        out_a.append(a[keep])
        out_b.append(b[keep])
        have += int(keep.sum())
    return np.concatenate(out_a)[:n], np.concatenate(out_b)[:n]


def _rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm((a - b).ravel()) / max(np.linalg.norm(b.ravel()), 1e-30))


def _interior(img: np.ndarray) -> np.ndarray:
    return img[1:-1, 1:-1, 1:-1]


class Peer:
    """libparallelproj through ctypes (non-TOF, TOF sinogram, TOF list-mode), world mm in (z, y, x) order."""

    def __init__(self, path: str) -> None:
        self.lib = ctypes.CDLL(path)
        f = np.ctypeslib.ndpointer(dtype=np.float32, flags="C_CONTIGUOUS")
        i32 = np.ctypeslib.ndpointer(dtype=np.int32, flags="C_CONTIGUOUS")
        i16 = np.ctypeslib.ndpointer(dtype=np.int16, flags="C_CONTIGUOUS")
        base = [f, f, f, f, f, f, ctypes.c_size_t, i32]
        tof = [ctypes.c_float, f, f, ctypes.c_float]
        for name, args in (("joseph3d_fwd", base), ("joseph3d_back", base),
                           ("joseph3d_tof_sino_fwd", base + tof + [ctypes.c_short, ctypes.c_ubyte, ctypes.c_ubyte]),
                           ("joseph3d_tof_sino_back", base + tof + [ctypes.c_short, ctypes.c_ubyte, ctypes.c_ubyte]),
                           ("joseph3d_tof_lm_fwd", base + tof + [i16, ctypes.c_short, ctypes.c_ubyte, ctypes.c_ubyte]),
                           ("joseph3d_tof_lm_back", base + tof + [i16, ctypes.c_short, ctypes.c_ubyte, ctypes.c_ubyte])):
            fn = getattr(self.lib, name)
            fn.restype = None
            fn.argtypes = args + [ctypes.c_int, ctypes.c_int]
        origin = -(np.asarray(SHAPE_ZYX) - 1) * VOXEL_MM / 2.0
        self.origin = origin.astype(np.float32)
        self.voxel = np.full(3, VOXEL_MM, dtype=np.float32)
        self.dim = np.asarray(SHAPE_ZYX, dtype=np.int32)

    def _tof(self, width_mm, sigma_mm):
        return (ctypes.c_float(width_mm), np.array([sigma_mm], np.float32), np.zeros(1, np.float32),
                ctypes.c_float(5.0))

    def fwd(self, img, xs, xe):
        out = np.zeros(xs.shape[0], np.float32)
        self.lib.joseph3d_fwd(xs, xe, img, self.origin, self.voxel, out, xs.shape[0], self.dim, 0, 64)
        return out

    def back(self, y, xs, xe):
        img = np.zeros(SHAPE_ZYX, np.float32)
        self.lib.joseph3d_back(xs, xe, img, self.origin, self.voxel, y, xs.shape[0], self.dim, 0, 64)
        return img

    def tof_sino_fwd(self, img, xs, xe, width_mm, sigma_mm):
        out = np.zeros((xs.shape[0], N_TOF), np.float32)
        self.lib.joseph3d_tof_sino_fwd(xs, xe, img, self.origin, self.voxel, out, xs.shape[0], self.dim,
                                       *self._tof(width_mm, sigma_mm), N_TOF, 0, 0, 0, 64)
        return out

    def tof_sino_back(self, y, xs, xe, width_mm, sigma_mm):
        img = np.zeros(SHAPE_ZYX, np.float32)
        self.lib.joseph3d_tof_sino_back(xs, xe, img, self.origin, self.voxel, y, xs.shape[0], self.dim,
                                        *self._tof(width_mm, sigma_mm), N_TOF, 0, 0, 0, 64)
        return img

    def tof_lm_fwd(self, img, xs, xe, bins, width_mm, sigma_mm):
        out = np.zeros(xs.shape[0], np.float32)
        self.lib.joseph3d_tof_lm_fwd(xs, xe, img, self.origin, self.voxel, out, xs.shape[0], self.dim,
                                     *self._tof(width_mm, sigma_mm), bins, N_TOF, 0, 0, 0, 64)
        return out

    def tof_lm_back(self, y, xs, xe, bins, width_mm, sigma_mm):
        img = np.zeros(SHAPE_ZYX, np.float32)
        self.lib.joseph3d_tof_lm_back(xs, xe, img, self.origin, self.voxel, y, xs.shape[0], self.dim,
                                      *self._tof(width_mm, sigma_mm), bins, N_TOF, 0, 0, 0, 64)
        return img


def _synced(fn, arg, sync):
    out = fn(arg)
    sync()
    return out


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def _compare(label: str, n: int, unit: str, ours: dict, peer: dict | None, repeats: int) -> dict:
    """Run both interleaved ``repeats`` times; print the medians, throughput and ratios; return the figures."""
    times = {k: [] for k in ("fwd", "back", "peer_fwd", "peer_back")}
    res = {}
    for _ in range(repeats):
        for key in ("fwd", "back"):
            t, res[key] = _timed(ours[key])
            times[key].append(t)
            if peer is not None:
                t, res["peer_" + key] = _timed(peer[key])
                times["peer_" + key].append(t)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    row = {"case": label, "n": n, **{f"t_{k}": v for k, v in med.items()}}
    line = (f"{label:<34s} {n:>9,d} {unit}  petspect fwd {med['fwd']:6.2f} s ({n / med['fwd'] / 1e6:5.2f} M/s)  "
            f"back {med['back']:6.2f} s ({n / med['back'] / 1e6:5.2f} M/s)")
    if peer is not None:
        rf, rb = med["peer_fwd"] / med["fwd"], med["peer_back"] / med["back"]
        agree_f, agree_b = ours["agree"](res)
        row.update(ratio_fwd=rf, ratio_back=rb, agree_fwd=agree_f, agree_back=agree_b)
        line += (f"\n{'':34s} {'':>9s} {'':{len(unit)}s}  libparallelproj fwd {med['peer_fwd']:6.2f} s  "
                 f"back {med['peer_back']:6.2f} s  ->  speed ratio (peer time / petspect time) fwd {rf:4.2f}x  "
                 f"back {rb:4.2f}x;  agreement rel. L2 fwd {agree_f:.1e}  back {agree_b:.1e}")
    print(line, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer", default=None, help="path of libparallelproj.so (built by the peer's build.sh)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lors", type=int, default=1_500_000)
    parser.add_argument("--tof-lors", type=int, default=300_000, help="LORs of the TOF sinogram case")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="petspect's device (cuda: the torch kernels on the GPU; "
                                                        "the peer always runs on the CPU)")
    args = parser.parse_args()
    # the same thread count for both: OpenMP (the peer) reads it when its runtime starts
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    from petspect.geometry.pet import ImageGrid, ListmodeEvents
    from petspect.projectors import pet_joseph_numba
    from petspect.projectors.pet import PetListmodeProjector
    from petspect.projectors.pet_joseph import TofKernel, joseph_backward, joseph_forward
    from petspect.units import tof_fwhm_ps_to_mm

    torch.set_num_threads(args.threads)
    peer = None
    if args.peer and Path(args.peer).is_file():
        peer = Peer(args.peer)
    else:
        print(f"libparallelproj not found ({args.peer!r}): build it with ../shared/peers/libparallelproj/build.sh "
              "OUT.so and pass --peer OUT.so; running petspect only", file=sys.stderr)
    dev = torch.device(args.device)
    if dev.type == "cpu":
        print(f"petspect numba kernels: compile/load {pet_joseph_numba.warm_up((torch.float32,)):.1f} s "
              f"(not counted); threads: petspect {pet_joseph_numba.set_threads()}, OMP_NUM_THREADS "
              f"{os.environ['OMP_NUM_THREADS']}; numba threading layer {pet_joseph_numba.threading_layer()}")
    else:
        print(f"petspect on {torch.cuda.get_device_name(dev)} (torch kernels); peer on the CPU with "
              f"OMP_NUM_THREADS {os.environ['OMP_NUM_THREADS']}")

    grid = ImageGrid(SHAPE_ZYX, (VOXEL_MM,) * 3)
    gen = torch.Generator().manual_seed(args.seed)
    image = torch.rand(SHAPE_ZYX, generator=gen)
    image_in = image.clone()
    image_in[[0, -1]] = 0
    image_in[:, [0, -1]] = 0
    image_in[:, :, [0, -1]] = 0
    img_np = image_in.numpy()
    image_in = image_in.to(dev)
    a_mm, b_mm = _random_lors(args.lors, args.seed)
    print(f"{args.lors:,d} random LORs of a {N_RINGS}-ring scanner (R {RADIUS_MM:.0f} mm), image "
          f"{SHAPE_ZYX[2]} x {SHAPE_ZYX[1]} x {SHAPE_ZYX[0]} (x, y, z) of {VOXEL_MM} mm")
    # the peer takes world coordinates in the image's axis order (z, y, x)
    xs = np.ascontiguousarray(a_mm[:, ::-1], dtype=np.float32)
    xe = np.ascontiguousarray(b_mm[:, ::-1], dtype=np.float32)
    rows = []

    # ------------------------------------------------------------------ non-TOF
    op = PetListmodeProjector(torch.as_tensor(a_mm), torch.as_tensor(b_mm), grid).to(dev)
    y = torch.rand(args.lors, generator=gen)
    y_np = y.numpy()
    y = y.to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    agree = (lambda r: (_rel_l2(r["fwd"].cpu().numpy(), r["peer_fwd"]),
                        _rel_l2(_interior(r["back"].cpu().numpy()), _interior(r["peer_back"]))))
    rows.append(_compare("non-TOF", args.lors, "LORs",
                         {"fwd": lambda: _synced(op, image_in, sync), "back": lambda: _synced(op.adjoint, y, sync),
                          "agree": agree},
                         None if peer is None else {"fwd": lambda: peer.fwd(img_np, xs, xe),
                                                    "back": lambda: peer.back(y_np, xs, xe)}, args.repeats))

    # ------------------------------------------------------------------ TOF sinogram
    width_mm, fwhm_mm = tof_fwhm_ps_to_mm(TOF_BIN_PS), tof_fwhm_ps_to_mm(TOF_FWHM_PS)
    tof = TofKernel(fwhm_mm, width_mm, N_TOF)
    n_t = min(args.tof_lors, args.lors)
    s_idx = grid.world_to_index(torch.as_tensor(a_mm[:n_t])).float().to(dev)
    e_idx = grid.world_to_index(torch.as_tensor(b_mm[:n_t])).float().to(dev)
    yt = torch.rand((n_t, N_TOF), generator=gen)
    yt_np = yt.numpy()
    yt = yt.to(dev)
    rows.append(_compare(f"TOF sinogram ({N_TOF} bins)", n_t, "LORs",
                         {"fwd": lambda: _synced(lambda v: joseph_forward(v, s_idx, e_idx, grid.spacing_mm, tof=tof),
                                                 image_in, sync),
                          "back": lambda: _synced(lambda v: joseph_backward(v, s_idx, e_idx, SHAPE_ZYX, grid.spacing_mm,
                                                                            tof=tof), yt, sync),
                          "agree": agree},
                         None if peer is None else {
                             "fwd": lambda: peer.tof_sino_fwd(img_np, xs[:n_t], xe[:n_t], width_mm, tof.sigma_mm),
                             "back": lambda: peer.tof_sino_back(yt_np, xs[:n_t], xe[:n_t], width_mm, tof.sigma_mm)},
                         args.repeats))

    # ------------------------------------------------------------------ TOF list-mode
    rng = np.random.default_rng(args.seed + 1)
    bins = np.clip(N_TOF // 2 + rng.integers(-4, 5, args.lors), 0, N_TOF - 1)
    events = ListmodeEvents(torch.as_tensor(a_mm), torch.as_tensor(b_mm), torch.as_tensor(bins))
    op_lm = PetListmodeProjector(events, None, grid, tof_kernel=tof).to(dev)
    bins16 = np.ascontiguousarray(bins, dtype=np.int16)
    rows.append(_compare("TOF list-mode", args.lors, "events",
                         {"fwd": lambda: _synced(op_lm, image_in, sync), "back": lambda: _synced(op_lm.adjoint, y, sync),
                          "agree": agree},
                         None if peer is None else {
                             "fwd": lambda: peer.tof_lm_fwd(img_np, xs, xe, bins16, width_mm, tof.sigma_mm),
                             "back": lambda: peer.tof_lm_back(y_np, xs, xe, bins16, width_mm, tof.sigma_mm)},
                         args.repeats))
    if peer is not None:
        worst = min(min(r["ratio_fwd"], r["ratio_back"]) for r in rows)
        print(f"slowest petspect/peer case: petspect is {worst:.2f}x the peer's speed")


if __name__ == "__main__":
    main()
