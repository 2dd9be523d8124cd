"""Deep-learning dosimetry: density-specific kernels from the local CT, and dose maps from SPECT/CT.

1. **DL kernels** (the idea of Akhavanallaf et al, EJNMMI 48:670, 2021): a small 3D CNN reads the
   density patch (``patch`` voxels a side) around a source voxel and predicts the fraction of the emitted
   electron energy deposited in each voxel of the ``k`` x ``k`` x ``k`` neighbourhood. Training targets come
   from the voxelised Monte Carlo (:mod:`petspect.dosimetry.montecarlo`'s electron transport) on random
   heterogeneous patches (soft tissue, lung and bone with random planar interfaces). Dose: energy per
   target voxel / its own mass, plus the photon part by the (density-scaled) photon-only water kernel.
2. **DL dose**: fixed physics layers (:func:`physics_base_dose`: the electron kernel density-scaled, the
   photon kernel not) give a base dose; a small dilated CNN maps (TIA, density, base dose, its electron
   share) to a multiplicative correction of it, trained against Monte Carlo dose maps with a loss on region
   means and a noise-weighted voxel term. The last layer starts at zero, so the untrained network is the
   physics base, and validation decides whether any trained epoch beats it.

Both are small enough to train on the CPU in minutes; :func:`timed` measures their wall and CPU time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

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
    """Small fully convolutional 3D network: (B, 4, Z, Y, X) -> log dose correction (B, 1, Z, Y, X).

    Four 3x3x3 convolutions with dilations 1, 2, 4 and 1 (receptive field 17 voxels, 82 mm at 4.8 mm voxels:
    the electron range and the near photon field, not the whole patient), ``width`` channels, then a 1x1x1
    output convolution over those features and the inputs themselves (a linear path that trains fast),
    initialised at zero, so the untrained network returns the physics base dose
    unchanged. About 13 000 parameters: the correction is local (density interfaces, the body outline),
    which the few Monte Carlo training subjects can constrain. Inference on a 20 x 48 x 48 grid takes about
    11 ms of CPU on one thread at width 8 (oneDNN convolutions, :meth:`_forward_onednn`; 48-95 ms through
    PyTorch's default dispatch; benchmarks/bench_dosimetry.py --dl-speed).
    """

    def __init__(self, width: int = 12, in_channels: int = 4) -> None:
        super().__init__()
        layers, ci = [], in_channels
        for dil in (1, 2, 4, 1):
            layers += [nn.Conv3d(ci, width, 3, padding=dil, dilation=dil), nn.LeakyReLU(0.1)]
            ci = width
        self.features = nn.Sequential(*layers)
        self.out = nn.Conv3d(width + in_channels, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _use_onednn(x):
            return self._forward_onednn(x)
        return self.out(torch.cat([self.features(x), x], 1))

    def _forward_onednn(self, x: torch.Tensor) -> torch.Tensor:
        """Inference on CPU through oneDNN: the same layers and weights, the same result to float32 rounding.

        For a single volume with few channels on one thread, PyTorch's convolution dispatch picks its
        reference implementations (``slow_conv3d_forward``, ``slow_conv_dilated3d``), about 10x slower here
        than oneDNN's (a 8 -> 8 channel 3x3x3 convolution over 20 x 48 x 48 voxels: 28 ms vs 2.8 ms CPU);
        feeding the convolutions an oneDNN-layout input selects oneDNN. Used without autograd only.
        """
        h = x
        for layer in self.features:
            if isinstance(layer, nn.Conv3d):
                h = F.conv3d(h.to_mkldnn(), layer.weight, layer.bias, layer.stride, layer.padding,
                             layer.dilation, layer.groups).to_dense()
            else:
                h = layer(h)
        return self.out(torch.cat([h, x], 1))


def _use_onednn_available() -> bool:
    return bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)


def _use_onednn(x: torch.Tensor) -> bool:
    """True when :meth:`DoseNet.forward` can take the oneDNN inference path (CPU, float32, no autograd)."""
    return (not torch.is_grad_enabled() and x.device.type == "cpu" and x.dtype == torch.float32
            and _use_onednn_available())


def dose_inputs(tia_mbq_s: np.ndarray, density: np.ndarray, electron_dose_gy: np.ndarray,
                photon_dose_gy: np.ndarray) -> torch.Tensor:
    """Network input (1, 4, Z, Y, X): log-scaled TIA, log density, log-scaled base dose, electron share of it.

    Every channel is scale-free (TIA and dose relative to their maxima), so the correction does not depend on
    the administered activity.
    """
    base = electron_dose_gy + photon_dose_gy
    scale = max(float(base.max()), 1e-30)
    tscale = max(float(tia_mbq_s.max()), 1e-30)
    x = np.stack([np.log1p(1e3 * tia_mbq_s / tscale), np.log(np.clip(density, 1e-3, None)),
                  np.log1p(1e3 * base / scale), electron_dose_gy / np.maximum(base, 1e-30)])
    return torch.as_tensor(x[None], dtype=torch.float32)


@dataclass
class DoseModel:
    """A trained DL dose model and its training record (``epoch`` 0: the untrained network, i.e. the base)."""

    net: DoseNet
    train_loss: float
    val_loss: float
    train_s: float
    epochs: int
    epoch: int = 0
    base_val_loss: float = math.nan


def _dose_case_tensors(c: dict, flip: tuple[int, ...] = ()):
    x = dose_inputs(c["tia"], c["density"], c["electron_dose"], c["photon_dose"])
    base = torch.as_tensor((c["electron_dose"] + c["photon_dose"])[None, None], dtype=torch.float32)
    mc = torch.as_tensor(c["mc"][None, None], dtype=torch.float32)
    regions = torch.as_tensor(c["regions"][None, None], dtype=torch.int64)
    if flip:
        x, base, mc, regions = (torch.flip(t, flip) for t in (x, base, mc, regions))
    return x, base, mc, regions


def _dose_loss(net: DoseNet, t, region_weight: float = 10.0) -> torch.Tensor:
    """Region term + voxel term, both unbiased under the Monte Carlo's zero-mean noise.

    Region term: mean over labelled regions of (mean predicted dose / mean MC dose - 1)^2 (region means
    average the MC noise down to ~1 %). Voxel term: sum of (D - D_MC)^2 / D_base over voxels above 1 % of the
    MC maximum, divided by the sum of D_base there (a chi-square with a variance proportional to the dose, as
    for counting noise; about the squared relative voxel noise of the MC, ~0.05), which keeps the voxel
    pattern physical without fitting single noisy voxels. ``region_weight`` (10) brings the region term
    (squared biases of a few %, ~1e-3) to the voxel term's gradient scale.
    """
    x, base, mc, regions = t
    pred = base * torch.exp(net(x))
    mask = mc > 0.01 * mc.max()
    b = base[mask].clamp_min(1e-30)
    voxel = torch.sum((pred[mask] - mc[mask]) ** 2 / b) / torch.sum(b)
    r = regions.flatten()
    n_reg = int(r.max()) + 1
    cnt = torch.bincount(r, minlength=n_reg).float()
    sp = torch.zeros(n_reg).index_add_(0, r, pred.flatten())
    sm = torch.zeros(n_reg).index_add_(0, r, mc.flatten())
    ok = (cnt >= 3) & (sm > 0)
    ok[0] = False
    region = torch.mean((sp[ok] / sm[ok] - 1.0) ** 2) if bool(ok.any()) else torch.zeros(())
    return region_weight * region + voxel


def train_dose_model(train: list[dict], val: list[dict], *, epochs: int = 60, seed: int = 0,
                     lr: float = 2e-3, width: int = 12) -> DoseModel:
    """Train :class:`DoseNet` on cases with keys ``tia``, ``density``, ``electron_dose``, ``photon_dose``
    (the two physics-base components, Gy), ``mc`` (Monte Carlo dose, Gy) and ``regions`` (integer labels,
    0 = none; used by the loss only, never at inference).

    Loss: :func:`_dose_loss`. Training cases are augmented by left-right flips (x axis). The
    epoch with the lowest validation loss is kept, the untrained network (the base dose itself) included,
    so the network is only used where it beats its own physics base on validation.
    """
    if not train:
        raise InputError("DL dose training needs at least one case")
    t0 = time.perf_counter()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = DoseNet(width)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    tr_t = [_dose_case_tensors(c, f) for c in train for f in ((), (4,))]
    va_t = [_dose_case_tensors(c) for c in val]

    def mean_loss(ts):
        with torch.no_grad():
            return float(np.mean([float(_dose_loss(net, t)) for t in ts]))

    net.eval()
    base_val = mean_loss(va_t) if va_t else math.nan
    best = (base_val if va_t else math.inf, {kk: v.clone() for kk, v in net.state_dict().items()}, 0)
    gen = torch.Generator().manual_seed(seed)
    for ep in range(1, epochs + 1):
        net.train()
        for i in torch.randperm(len(tr_t), generator=gen).tolist():
            opt.zero_grad()
            loss = _dose_loss(net, tr_t[i])
            loss.backward()
            opt.step()
        net.eval()
        vl = mean_loss(va_t) if va_t else float(loss)
        if vl < best[0]:
            best = (vl, {kk: v.clone() for kk, v in net.state_dict().items()}, ep)
    net.load_state_dict(best[1])
    tl = mean_loss(tr_t[::2])
    return DoseModel(net.eval(), tl, best[0], time.perf_counter() - t0, epochs, best[2], base_val)


def physics_base_dose(tia_mbq_s: np.ndarray, density: np.ndarray, electron_kernel: np.ndarray,
                      photon_kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The DL dose's fixed physics layers: (electron dose, photon dose) in Gy.

    Electrons: the soft-tissue electron kernel convolved and scaled by 1.03 / local density (their energy is
    absorbed within about a voxel, so per unit mass it goes as 1/rho). Photons: the photon kernel convolved
    without density scaling (photon dose is fluence x mu_en/rho, nearly independent of the local density).
    Both are FFT convolutions (:func:`petspect.dosimetry.voxel_dose.kernel_dose`).
    """
    from petspect.dosimetry.voxel_dose import kernel_dose

    return (kernel_dose(tia_mbq_s, electron_kernel, density_g_per_ml=density),
            kernel_dose(tia_mbq_s, photon_kernel))


def dl_dose(model: DoseModel, tia_mbq_s: np.ndarray, density: np.ndarray, electron_dose_gy: np.ndarray,
            photon_dose_gy: np.ndarray) -> np.ndarray:
    """Predicted dose (Gy): the physics base dose (electron + photon parts) times the network's correction."""
    with torch.no_grad():
        c = model.net(dose_inputs(tia_mbq_s, density, electron_dose_gy, photon_dose_gy))[0, 0].numpy()
    return (electron_dose_gy + photon_dose_gy) * np.exp(c)


def timed(fn, *args, **kwargs):
    """(result, wall seconds, CPU seconds of this process) of ``fn(*args, **kwargs)``."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0, time.process_time() - c0
