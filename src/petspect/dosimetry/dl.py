"""Deep-learning dosimetry: density-specific kernels from the local CT, and dose maps from SPECT/CT.

1. **DL kernels** (the idea of Akhavanallaf et al, EJNMMI 48:670, 2021): a small 3D CNN reads the
   density patch (``patch`` voxels a side) around a source voxel and predicts the fraction of the emitted
   electron energy deposited in each voxel of the ``k`` x ``k`` x ``k`` neighbourhood. Training targets come
   from the voxelised Monte Carlo (:mod:`petspect.dosimetry.montecarlo`'s electron transport) on random
   heterogeneous patches (soft tissue, lung and bone with random planar interfaces). Dose: energy per
   target voxel / its own mass, plus the photon part by the (density-scaled) photon-only water kernel.
2. **DL dose**: a 3D U-Net maps (time-integrated activity, CT density, water-kernel dose) to a
   multiplicative correction of the density-scaled kernel dose, trained against Monte Carlo dose maps.
   The kernel convolution is a fixed physics layer (not learned); the last layer starts at zero, so the
   untrained network is the density-scaled kernel method.

Both are small enough to train on the CPU in minutes; :func:`timed` measures their wall time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from petspect.dosimetry.spectra import emissions
from petspect.errors import InputError



# ------------------------------------------------------------------------------------------ DL kernels
class KernelNet(nn.Module):
    """Density patch (B, 1, P, P, P) -> logits (B, K^3 + 1) of where the source's electron energy goes.

    ``softmax(logits)[:, :K^3]`` are the energy fractions deposited in the K^3 neighbourhood (z, y, x
    order), the last entry the fraction deposited outside it.
    """

    def __init__(self, patch: int = 7, k: int = 5, width: int = 8) -> None:
        super().__init__()
        if patch < k or patch % 2 == 0 or k % 2 == 0:
            raise InputError(f"patch ({patch}) and k ({k}) must be odd with patch >= k")
        self.patch, self.k = patch, k
        self.features = nn.Sequential(
            nn.Conv3d(1, width, 3, padding=1), nn.ReLU(),
            nn.Conv3d(width, width, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(width * patch ** 3, k ** 3 + 1)

    def forward(self, density: torch.Tensor) -> torch.Tensor:
        x = torch.log(density.clamp_min(1e-3))
        return self.head(self.features(x).flatten(1))

    def fractions(self, density: torch.Tensor) -> torch.Tensor:
        """Energy fractions (B, K^3) in the neighbourhood."""
        return torch.softmax(self(density), dim=1)[:, :-1]


def random_density_patches(n: int, patch: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random heterogeneous density patches (n, P, P, P) in g/mL: one or two media (lung 0.2-0.45,
    adipose/soft 0.92-1.1, bone 1.15-1.9) split by a random plane through or near the centre."""
    media = [(0.20, 0.45), (0.92, 1.10), (1.15, 1.90)]
    c = (np.arange(patch) - patch // 2).astype(float)
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    out = np.empty((n, patch, patch, patch))
    for i in range(n):
        m1, m2 = rng.integers(0, 3, size=2)
        r1 = rng.uniform(*media[m1])
        r2 = rng.uniform(*media[m2])
        normal = rng.normal(size=3)
        normal /= np.linalg.norm(normal)
        offset = rng.uniform(-1.5, 1.5)
        side = normal[0] * z + normal[1] * y + normal[2] * x > offset
        vol = np.where(side, r1, r2) if rng.random() < 0.75 else np.full(z.shape, r1)
        out[i] = vol * (1 + 0.02 * rng.standard_normal(vol.shape))
    return np.clip(out, 0.05, 2.5)


def mc_electron_kernels(densities: np.ndarray, nuclide: str, voxel_mm: float, k: int, *,
                        electrons_per_patch: int, seed: int) -> np.ndarray:
    """Monte Carlo electron energy fractions (n, k, k, k) for a source uniform in each patch's centre voxel.

    All patches are transported together (Numba kernel): patch i occupies slab i of a tall grid, separated
    by one-voxel absorbing gaps (electrons that leave a patch are dropped), so patches never interact.
    """
    from petspect.dosimetry._electron_numba import transport_on_grid

    n, p = densities.shape[0], densities.shape[1]
    a = float(voxel_mm)
    em = emissions(nuclide)
    e_kev, w = em.electron_lines(400)
    rng = np.random.default_rng(seed)
    m = electrons_per_patch * n
    idx = rng.choice(len(e_kev), size=m, p=w / w.sum())
    width = e_kev[1] - e_kev[0]
    e = np.maximum(e_kev[idx] + np.where(idx < 400, (rng.random(m) - 0.5) * width, 0.0), 0.0) / 1000.0
    patch_of = np.repeat(np.arange(n), electrons_per_patch)
    # patch i occupies slab rows [i (p + 1), i (p + 1) + p); the row after it has density 0 (absorbing gap)
    tall = np.zeros((n * (p + 1), p, p))
    for i in range(n):
        tall[i * (p + 1):i * (p + 1) + p] = densities[i]
    pos = (np.full((m, 3), p // 2, float) + rng.random((m, 3))) * a
    pos[:, 0] += patch_of * (p + 1) * a
    dep = transport_on_grid(pos, e, tall, a, seed=int(rng.integers(2 ** 31)))
    acc = np.stack([dep[i * (p + 1):i * (p + 1) + p] for i in range(n)])
    emitted = np.bincount(patch_of, weights=e, minlength=n)
    lo = p // 2 - k // 2
    return acc[:, lo:lo + k, lo:lo + k, lo:lo + k] / emitted[:, None, None, None]


@dataclass
class KernelModel:
    """A trained DL kernel model with its settings and training record."""

    net: KernelNet
    nuclide: str
    voxel_mm: float
    train_loss: float
    val_loss: float
    train_s: float


def train_kernel_model(nuclide: str, voxel_mm: float, *, n_train: int = 200, n_val: int = 40, patch: int = 7,
                       k: int = 5, electrons_per_patch: int = 2000, epochs: int = 150, seed: int = 0) -> KernelModel:
    """Simulate training patches with the Monte Carlo and fit :class:`KernelNet`.

    Loss: cross-entropy between the Monte Carlo energy distribution (K^3 fractions plus the escaping rest)
    and the predicted one, i.e. errors weighted by where the energy actually goes (Adam, best validation
    epoch kept).
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    dens = random_density_patches(n_train + n_val, patch, rng)
    frac = mc_electron_kernels(dens, nuclide, voxel_mm, k, electrons_per_patch=electrons_per_patch, seed=seed + 1)
    x = torch.as_tensor(dens[:, None], dtype=torch.float32)
    flat = frac.reshape(len(frac), -1)
    y = torch.as_tensor(np.concatenate([flat, np.clip(1 - flat.sum(1, keepdims=True), 0, None)], 1),
                        dtype=torch.float32)

    def ce(logits, target):
        return -torch.mean(torch.sum(target * torch.log_softmax(logits, dim=1), dim=1))
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = KernelNet(patch, k)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    xt, yt, xv, yv = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
    best = (math.inf, None)
    for _ in range(epochs):
        perm = torch.randperm(n_train, generator=gen)
        for s in range(0, n_train, 32):
            b = perm[s:s + 32]
            opt.zero_grad()
            loss = ce(net(xt[b]), yt[b])
            loss.backward()
            opt.step()
        with torch.no_grad():
            vl = float(ce(net(xv), yv)) if n_val else float(loss)
        if vl < best[0]:
            best = (vl, {kk: v.clone() for kk, v in net.state_dict().items()})
    net.load_state_dict(best[1])
    with torch.no_grad():
        tl = float(ce(net(xt), yt))
    return KernelModel(net.eval(), emissions(nuclide).nuclide, float(voxel_mm), tl, best[0], time.perf_counter() - t0)


def dl_kernel_dose(tia_mbq_s: np.ndarray, density_g_per_ml: np.ndarray, model: KernelModel,
                   photon_kernel: np.ndarray | None = None, *, batch: int = 8192) -> np.ndarray:
    """Dose (Gy) by superposing a predicted, density-specific electron kernel per source voxel.

    ``photon_kernel`` (mGy/(MBq s), soft tissue 1.03 g/mL) adds the photon dose (density-scaled).
    """
    from petspect.dosimetry.voxel_dose import MEV_TO_J, _check_density, _check_tia, kernel_dose

    tia = _check_tia(tia_mbq_s)
    rho = _check_density(density_g_per_ml, tia.shape)
    net = model.net
    p, k = net.patch, net.k
    h = p // 2
    pad = np.pad(rho, h, mode="edge")
    src = np.argwhere(tia > 0)
    energy = np.zeros(tuple(s + 2 * (k // 2) for s in tia.shape))
    e_mean = emissions(model.nuclide).mean_electron_energy_mev()
    t = torch.as_tensor(pad, dtype=torch.float32)
    win = t.unfold(0, p, 1).unfold(1, p, 1).unfold(2, p, 1)  # (z, y, x, p, p, p) view
    kh = k // 2
    offs = np.stack(np.meshgrid(*(np.arange(k),) * 3, indexing="ij"), -1).reshape(-1, 3)
    with torch.no_grad():
        for s in range(0, len(src), batch):
            b = src[s:s + batch]
            patches = win[b[:, 0], b[:, 1], b[:, 2]][:, None]
            frac = net.fractions(patches).numpy()
            e_dep = frac * (tia[b[:, 0], b[:, 1], b[:, 2]] * 1e6 * e_mean)[:, None]
            per_source = np.zeros(tia.shape)
            nz, ny, nx = tia.shape
            for j, o in enumerate(offs):
                per_source[b[:, 0], b[:, 1], b[:, 2]] = e_dep[:, j]
                energy[o[0]:o[0] + nz, o[1]:o[1] + ny, o[2]:o[2] + nx] += per_source
    energy = energy[kh:kh + tia.shape[0], kh:kh + tia.shape[1], kh:kh + tia.shape[2]]
    a = model.voxel_mm
    dose = energy * MEV_TO_J / (rho * a ** 3 * 1e-6)
    if photon_kernel is not None:
        dose = dose + kernel_dose(tia, photon_kernel, density_g_per_ml=rho)
    return dose


# --------------------------------------------------------------------------------------------- DL dose
class DoseNet(nn.Module):
    """Small 3D U-Net (two levels): (B, 3, Z, Y, X) -> log dose correction (B, 1, Z, Y, X)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()

        def block(ci, co):
            return nn.Sequential(nn.Conv3d(ci, co, 3, padding=1), nn.GroupNorm(4, co), nn.LeakyReLU(0.1),
                                 nn.Conv3d(co, co, 3, padding=1), nn.GroupNorm(4, co), nn.LeakyReLU(0.1))

        self.enc1 = block(3, width)
        self.enc2 = block(width, 2 * width)
        self.mid = block(2 * width, 2 * width)
        self.dec2 = block(4 * width, width)
        self.dec1 = block(2 * width, width)
        self.out = nn.Conv3d(width, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.nn.functional as F

        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool3d(e1, 2, ceil_mode=True))
        m = self.mid(F.max_pool3d(e2, 2, ceil_mode=True))
        d2 = self.dec2(torch.cat([F.interpolate(m, size=e2.shape[2:], mode="trilinear", align_corners=False), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[2:], mode="trilinear", align_corners=False), e1], 1))
        return self.out(d1)


def dose_inputs(tia_mbq_s: np.ndarray, density: np.ndarray, water_dose_gy: np.ndarray) -> torch.Tensor:
    """Network input (1, 3, Z, Y, X): log-scaled TIA, density, log-scaled water-kernel dose."""
    scale = max(float(water_dose_gy.max()), 1e-30)
    tscale = max(float(tia_mbq_s.max()), 1e-30)
    x = np.stack([np.log1p(1e3 * tia_mbq_s / tscale), density, np.log1p(1e3 * water_dose_gy / scale)])
    return torch.as_tensor(x[None], dtype=torch.float32)


@dataclass
class DoseModel:
    """A trained DL dose model and its training record."""

    net: DoseNet
    train_loss: float
    val_loss: float
    train_s: float
    epochs: int


def train_dose_model(train: list[dict], val: list[dict], *, epochs: int = 60, seed: int = 0,
                     lr: float = 2e-3) -> DoseModel:
    """Train :class:`DoseNet` on cases with keys ``tia``, ``density``, ``water``, ``density_dose``, ``mc``.

    Loss: mean squared error of the predicted correction factor against MC dose / density-scaled kernel dose,
    over voxels above 1 % of the case's maximum MC dose (a squared error of ratios, not of logarithms, so the
    Monte Carlo's statistical noise does not bias the prediction low); the epoch with the lowest validation
    loss is kept.
    """
    if not train:
        raise InputError("DL dose training needs at least one case")
    t0 = time.perf_counter()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = DoseNet()
    opt = torch.optim.Adam(net.parameters(), lr=lr)

    def tensors(c):
        x = dose_inputs(c["tia"], c["density"], c["water"])
        base = torch.as_tensor(c["density_dose"][None, None], dtype=torch.float32)
        mc = torch.as_tensor(c["mc"][None, None], dtype=torch.float32)
        mask = mc > 0.01 * mc.max()
        return x, base, mc, mask

    tr_t = [tensors(c) for c in train]
    va_t = [tensors(c) for c in val]

    def loss_of(t):
        x, base, mc, mask = t
        ratio = torch.exp(net(x))[mask]
        target = mc[mask] / base[mask].clamp_min(1e-30)
        # squared error of the ratio: unbiased under the Monte Carlo's zero-mean noise (a log loss is not)
        return torch.mean((ratio - target) ** 2)

    best = (math.inf, None)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        for i in torch.randperm(len(tr_t), generator=gen).tolist():
            opt.zero_grad()
            loss = loss_of(tr_t[i])
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            vl = float(np.mean([float(loss_of(t)) for t in va_t])) if va_t else float(loss)
        if vl < best[0]:
            best = (vl, {kk: v.clone() for kk, v in net.state_dict().items()})
    net.load_state_dict(best[1])
    with torch.no_grad():
        tl = float(np.mean([float(loss_of(t)) for t in tr_t]))
    return DoseModel(net.eval(), tl, best[0], time.perf_counter() - t0, epochs)


def dl_dose(model: DoseModel, tia_mbq_s: np.ndarray, density: np.ndarray, water_dose_gy: np.ndarray,
            density_dose_gy: np.ndarray) -> np.ndarray:
    """Predicted dose (Gy): density-scaled kernel dose times the network's correction."""
    with torch.no_grad():
        c = model.net(dose_inputs(tia_mbq_s, density, water_dose_gy))[0, 0].numpy()
    return density_dose_gy * np.exp(c)


def timed(fn, *args, **kwargs):
    """(result, wall seconds) of ``fn(*args, **kwargs)``."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0
