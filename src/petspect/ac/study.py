"""``petspect study ac``: CT-free attenuation correction judged on the PET reconstructed again from raw data.

Protocol (:mod:`petspect.evaluation`): subjects are simulated per region (torso, brain) by
:func:`petspect.ac.data.make_case` (fine truth, TOF raw data, no inverse crime); fixed subject-wise splits:
training and validation subjects with the first tracer (FDG), test subjects with FDG and with a second
tracer of another distribution (torso: PSMA, brain: amyloid) that no network saw. Networks pick their epoch
on validation; the test subjects are scored once (:func:`petspect.evaluation.record_test_scoring`).

Every method's attenuation map (or image) goes through :func:`petspect.ac.correct.reconstruct_with_mu`
(scatter re-estimated by SSS with that map). Reference: ``ct_ac`` (the CT's map). Per subject and method:
the regional SUV bias against ``ct_ac`` over the tissue labels with at least ``min_region_voxels`` voxels
(``suv_bias_pct_max_abs``: the largest absolute regional bias; ``suv_bias_pct_mean``: the mean signed
regional bias; the skin shell is left out, a partial-volume boundary rather than an organ), and for synthetic CTs ``hu_mae`` (inside the CT's body) and ``bone_dice`` (HU > 150).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from petspect.errors import ConfigError

__all__ = ["AcStudyConfig", "preset_config", "run_ac_study", "regional_bias"]

SECOND_TRACER = {"torso": "psma", "brain": "amyloid"}
#: labels left out of the regional bias: the skin shell is a partial-volume boundary, not an organ
EXCLUDED_REGIONS = ("background", "skin", "airway")
BONE_HU = 150.0


@dataclass(frozen=True)
class AcStudyConfig:
    """Sizes of one study preset."""

    preset: str
    regions: tuple[str, ...]
    n_train: int
    n_val: int
    n_test: int
    epochs: int
    shape: tuple[int, int, int]
    voxel_mm: float
    mlaa_iterations: int
    seed: int = 2026
    min_region_voxels: int = 4
    #: training subjects of the sinogram networks (TOF -> ACF, scatter): the first ``n_sino_train`` of the
    #: training subjects (None: all); their cost grows with the sinogram, not the image
    n_sino_train: int | None = None
    #: U-Net levels of the image-domain networks, batch size and peak learning rate
    unet_channels: tuple[int, ...] = (16, 32, 64)
    batch_size: int = 8
    lr: float = 2e-3


def preset_config(preset: str) -> AcStudyConfig:
    if preset == "tiny":
        return AcStudyConfig("tiny", ("torso",), 1, 1, 1, 1, (2, 24, 24), 16.0, 1)
    if preset == "quick":
        return AcStudyConfig("quick", ("torso", "brain"), 30, 4, 3, 100, (2, 40, 40), 8.0, 8, min_region_voxels=8,
                             n_sino_train=10)
    if preset == "full":
        return AcStudyConfig("full", ("torso", "brain"), 40, 8, 12, 80, (8, 96, 96), 4.0, 15)
    raise ConfigError(f"unknown preset {preset!r}")


def regional_bias(img: torch.Tensor, ref: torch.Tensor, labels: torch.Tensor, names: dict[int, str],
                  min_voxels: int) -> dict[str, float]:
    """Largest absolute and mean signed regional bias (%) of ``img`` against ``ref`` (same unit) over the tissue
    labels of at least ``min_voxels`` voxels (background, skin and airway left out); NaN when no region counts."""
    biases = []
    for lab in torch.unique(labels).tolist():
        if names.get(int(lab), "background") in EXCLUDED_REGIONS:
            continue
        m = labels == lab
        if int(m.sum()) < min_voxels:
            continue
        r = float(ref[m].mean())
        if r <= 1e-6 * float(ref.max()):
            continue
        biases.append(100.0 * (float(img[m].mean()) - r) / r)
    if not biases:
        return {"suv_bias_pct_max_abs": float("nan"), "suv_bias_pct_mean": float("nan")}
    return {"suv_bias_pct_max_abs": float(np.max(np.abs(biases))), "suv_bias_pct_mean": float(np.mean(biases))}


def _sct_metrics(hu: torch.Tensor, ct: torch.Tensor) -> dict[str, float]:
    body = ct > -500
    a, b = hu > BONE_HU, ct > BONE_HU
    dice = 2 * float((a & b).sum()) / max(1.0, float(a.sum() + b.sum()))
    return {"hu_mae": float((hu - ct).abs()[body].mean()), "bone_dice": dice}


def _norm_nac(nac: torch.Tensor) -> float:
    return float(torch.quantile(nac.flatten(), 0.99).clamp_min(1e-6))


def _inputs(case, nac: torch.Tensor, task: str) -> torch.Tensor:
    from petspect.ac.networks import network_inputs

    return network_inputs(task, nac=nac, t1=case.mr_t1, ute_r2_per_ms=case.ute)  # (z, C, y, x)


def _targets(case, nac: torch.Tensor, ctac: torch.Tensor, task: str) -> torch.Tensor:
    if task == "direct":
        return (ctac / _norm_nac(nac))[:, None] / 4.0
    return (case.ct_hu / 1000.0)[:, None]


def _synthetic_ct(model, case, nac: torch.Tensor, task: str, seg_settings) -> torch.Tensor:
    """The network's HU inside the body outline of its own input (air outside), as clinically."""
    from petspect.ac.networks import predict_slices
    from petspect.ac.segmentation_ac import body_outline, nac_body_mask

    if task == "mr_sct":
        body = torch.from_numpy(body_outline(case.mr_t1, seg_settings.body_fraction))
    else:
        body = torch.from_numpy(nac_body_mask(nac))
    return torch.where(body, predict_slices(model, _inputs(case, nac, task))[:, 0], torch.full_like(nac, -1000.0))


def _sct_pet(case, hu: torch.Tensor) -> torch.Tensor:
    """PET reconstructed again from the raw data with the synthetic CT's 511 keV map."""
    from petspect.ac.apply import HU_RANGE, MU_511_MAX_PER_MM
    from petspect.ac.correct import reconstruct_with_mu
    from petspect.materials import hu_to_mu_per_mm

    mu = hu_to_mu_per_mm(hu.clamp(*HU_RANGE), 511.0).clamp(0, MU_511_MAX_PER_MM)
    return reconstruct_with_mu(case.data, mu).image


def _line_integrals(case) -> torch.Tensor:
    """Attenuation line integrals of the CT's map (non-TOF sinogram), the target of the TOF -> ACF network."""
    return _line_integrals_of(case, case.mu_ct)


def _line_integrals_of(case, mu: torch.Tensor) -> torch.Tensor:
    """Line integrals of ``mu`` (1/mm) along the data's LORs (non-TOF sinogram)."""
    from dataclasses import replace as _replace

    from petspect.physics.attenuation import attenuation_line_integrals
    from petspect.systems.acquisition import system_model

    line = system_model(_replace(case.data, attenuation=None), attenuation=False).base.projector.non_tof()
    return attenuation_line_integrals(mu, line).cpu()


def _sino_inputs(case, task: str) -> tuple[torch.Tensor, float]:
    """Per-plane network inputs from the raw data and their count normaliser.

    ``tof_acf``: the TOF sinogram, TOF bins as channels ``(planes, T, views, radial)``; ``scatter``: the
    TOF-summed prompts and the CT's attenuation factors ``(planes, 2, views, radial)``.
    """
    y = case.data.prompts.to(torch.float32)
    norm = float(y.sum(-1).mean().clamp_min(1e-6))
    if task == "tof_acf":
        return (y / (norm / y.shape[-1])).permute(0, 3, 1, 2).contiguous(), norm
    att = torch.exp(-_line_integrals(case))
    return torch.stack([y.sum(-1) / norm, att], 1), norm


def run_ac_study(cfg: AcStudyConfig, out, *, log=print) -> dict[str, Any]:
    """Simulate, train, evaluate; returns ``{"metrics", "summary", "report"}`` pieces for ``write_study``."""
    from petspect.ac.correct import reconstruct_nac, reconstruct_with_mu, with_scatter
    from petspect.ac.data import make_case
    from petspect.ac.networks import UTE_SCALE_PER_MS, predict_slices, save_model, train_translation
    from petspect.ac.segmentation_ac import (MrSegmentation, mr_segmentation_mu, nac_body_mask,
                                             nac_outline_mu)
    from petspect.evaluation import record_test_scoring, summarise_methods
    from petspect.recon.mlaa import MlaaSettings, mlaa

    t0 = time.time()
    wall: dict[str, float] = {}
    per_subject: list[dict[str, dict[str, float]]] = []
    subject_ids: list[str] = []
    tuned: dict[str, Any] = {}
    figures: list[tuple[str, dict[str, np.ndarray]]] = []
    spacing = (cfg.voxel_mm,) * 3
    data_info: dict[str, Any] = {"simulator": "petspect.ac.data.make_case", "shape": list(cfg.shape),
                                 "voxel_mm": cfg.voxel_mm, "truth_voxel_mm": cfg.voxel_mm / 2, "regions": {}}
    for r_i, region in enumerate(cfg.regions):
        seeds = {"train": [cfg.seed + 1000 * r_i + i for i in range(cfg.n_train)],
                 "val": [cfg.seed + 1000 * r_i + 100 + i for i in range(cfg.n_val)],
                 "test": [cfg.seed + 1000 * r_i + 200 + i for i in range(cfg.n_test)]}
        seg_settings = MrSegmentation(lung=region == "torso")

        def prepare(seed, tracer):
            case = make_case(region, tracer, seed, voxel_mm=cfg.voxel_mm, shape=cfg.shape)
            nac = reconstruct_nac(case.data)
            ctac = reconstruct_with_mu(case.data, case.mu_ct)
            case.info["sss_scatter"] = ctac.scatter
            return case, nac, ctac.image

        t = time.time()
        train = [prepare(s, "fdg") for s in seeds["train"]]
        val = [prepare(s, "fdg") for s in seeds["val"]]
        wall[f"{region}_simulate_train"] = time.time() - t
        models = {}
        t = time.time()
        for task in ("nac_sct", "mr_sct", "direct"):  # image-domain networks
            xs = torch.cat([_inputs(c, n, task) for c, n, _ in train])
            ys = torch.cat([_targets(c, n, a, task) for c, n, a in train])
            xv = torch.cat([_inputs(c, n, task) for c, n, _ in val])
            yv = torch.cat([_targets(c, n, a, task) for c, n, a in val])
            scale = 4.0 if task == "direct" else 1000.0
            input_norm = ({"t1": "99th percentile", "ute_scale_per_ms": UTE_SCALE_PER_MS, "ute_clip": 10.0}
                          if task == "mr_sct" else {"nac": "99th percentile"})
            model, info = train_translation(task, xs, ys, xv, yv, target_scale=scale, epochs=cfg.epochs,
                                            seed=cfg.seed + r_i, channels=cfg.unet_channels,
                                            batch_size=cfg.batch_size, lr=cfg.lr, input_norm=input_norm,
                                            trained_on={"region": region, "tracer": "fdg", "seeds": seeds["train"],
                                                        "voxel_mm": cfg.voxel_mm})
            models[task] = model
            save_model(model, Path(out) / "models" / f"{region}_{task}")
            tuned[f"{region}:{task}"] = {"epoch_chosen_on": "validation L1", **info}
            if task in ("nac_sct", "mr_sct"):  # the judged figure on the validation subjects (no choice made here)
                vb = [regional_bias(_sct_pet(c, _synthetic_ct(model, c, n, task, seg_settings)), a, c.labels,
                                    c.label_names, cfg.min_region_voxels)["suv_bias_pct_max_abs"] for c, n, a in val]
                tuned[f"{region}:{task}"]["val_suv_bias_pct_max_abs"] = [round(float(v), 2) for v in vb]
        for task in ("tof_acf", "scatter"):
            def target(c):
                if task == "tof_acf":
                    return _line_integrals(c)[:, None]
                return (c.scatter_true / _sino_inputs(c, task)[1])[:, None]

            sino_train = train[:cfg.n_sino_train] if cfg.n_sino_train else train
            xs = torch.cat([_sino_inputs(c, task)[0] for c, _, _ in sino_train])
            ys = torch.cat([target(c) for c, _, _ in sino_train])
            xv = torch.cat([_sino_inputs(c, task)[0] for c, _, _ in val])
            yv = torch.cat([target(c) for c, _, _ in val])
            model, info = train_translation(task, xs, ys, xv, yv, target_scale=1.0, epochs=cfg.epochs,
                                            seed=cfg.seed + r_i, batch_size=cfg.batch_size, lr=cfg.lr,
                                            mirror=task != "tof_acf",  # a radial flip would need reversed TOF bins
                                            trained_on={"region": region, "tracer": "fdg", "voxel_mm": cfg.voxel_mm,
                                                        "seeds": seeds["train"][:len(sino_train)]})
            models[task] = model
            save_model(model, Path(out) / "models" / f"{region}_{task}")
            tuned[f"{region}:{task}"] = {"epoch_chosen_on": "validation L1", **info}
        wall[f"{region}_train"] = time.time() - t
        # ---- test split: scored once per configuration (the ledger counts every read)
        t = time.time()
        first_fig = True
        for tracer in ("fdg", SECOND_TRACER[region]):
            for s in seeds["test"]:
                case, nac, ctac = prepare(s, tracer)
                labels = case.labels
                res: dict[str, dict[str, float]] = {}
                imgs: dict[str, torch.Tensor] = {"ct_ac": ctac, "nac": nac * (float(ctac.sum()) / max(float(nac.sum()), 1e-9))}
                mu_seg = mr_segmentation_mu(case.mr_t1, spacing_mm=spacing, settings=seg_settings)[0]
                mu_seg_bone = mr_segmentation_mu(case.mr_t1, spacing_mm=spacing, bone_image=case.ute,
                                                 settings=seg_settings)[0]
                mu_nacseg = nac_outline_mu(nac)
                imgs["seg_ac"] = reconstruct_with_mu(case.data, mu_seg).image
                imgs["seg_ac_bone"] = reconstruct_with_mu(case.data, mu_seg_bone).image
                imgs["seg_ac_nac"] = reconstruct_with_mu(case.data, mu_nacseg).image
                support = torch.from_numpy(nac_body_mask(nac))
                ml_data, _ = with_scatter(case.data, mu_nacseg)  # MLAA models the scatter of its start map
                ml = mlaa(ml_data, mu_nacseg, settings=MlaaSettings(iterations=cfg.mlaa_iterations), support=support)
                imgs["mlaa"] = reconstruct_with_mu(case.data, ml.mu_per_mm).image
                # synthetic CTs are used inside the body outline of their own input (air outside), as clinically
                nac_body = torch.from_numpy(nac_body_mask(nac))
                for name, task in (("dl_nac_sct", "nac_sct"), ("dl_mr_sct", "mr_sct")):
                    hu = _synthetic_ct(models[task], case, nac, task, seg_settings)
                    imgs[name] = _sct_pet(case, hu)
                    res[name] = _sct_metrics(hu, case.ct_hu)
                direct = predict_slices(models["direct"], _inputs(case, nac, "direct"))[:, 0].clamp_min(0) * _norm_nac(nac)
                imgs["dl_direct"] = torch.where(nac_body, direct, torch.zeros_like(direct))
                # attenuation factors from the TOF sinogram; scatter simulated with the NAC outline's water map
                li = predict_slices(models["tof_acf"], _sino_inputs(case, "tof_acf")[0])[:, 0].clamp_min(0)
                outline_li = _line_integrals_of(case, mu_nacseg)
                li = torch.where(outline_li > 0, li, torch.zeros_like(li))  # factors 1 on lines missing the body
                imgs["dl_tof_acf"] = reconstruct_with_mu(case.data, attenuation=torch.exp(-li),
                                                         scatter_mu_per_mm=mu_nacseg).image
                # scatter from the prompts and the CT's attenuation factors, against SSS (both vs the true scatter)
                xs_sc, norm = _sino_inputs(case, "scatter")
                sc_dl = predict_slices(models["scatter"], xs_sc)[:, 0].clamp_min(0) * norm
                imgs["dl_scatter"] = reconstruct_with_mu(case.data, case.mu_ct, scatter_counts=sc_dl).image
                truth_sc = case.scatter_true
                for name, est in (("ct_ac", case.info["sss_scatter"]), ("dl_scatter", sc_dl)):
                    res.setdefault(name, {})["scatter_nrmse_pct"] = float(
                        100 * torch.linalg.norm(est - truth_sc) / torch.linalg.norm(truth_sc).clamp_min(1e-9))
                for name, img in imgs.items():
                    res.setdefault(name, {}).update(regional_bias(img, ctac, labels, case.label_names,
                                                                   cfg.min_region_voxels))
                per_subject.append(res)
                subject_ids.append(f"{region}-{tracer}-{s}")
                if first_fig or tracer != "fdg" and s == seeds["test"][0]:
                    figures.append((f"{region} {tracer} subject {s}",
                                    {k: (100 * (v - ctac) / ctac.clamp_min(0.05 * float(ctac.max())))[0].numpy()
                                     for k, v in imgs.items() if k != "ct_ac"}))
                    first_fig = False
        wall[f"{region}_test"] = time.time() - t
        data_info["regions"][region] = {"train_tracer": "fdg", "test_tracers": ["fdg", SECOND_TRACER[region]],
                                        "seeds": seeds}
    scoring = record_test_scoring(out, {"task": "ac", "preset": cfg.preset, "seed": cfg.seed},
                                  "regional SUV bias vs CT-AC on held-out subjects", subject_ids)
    metrics = summarise_methods(per_subject, comparator="seg_ac",
                                metrics=["suv_bias_pct_max_abs", "suv_bias_pct_mean", "hu_mae", "bone_dice",
                                         "scatter_nrmse_pct"])
    by_tracer = {}
    for tracer_kind in ("fdg", "second"):
        sel = [p for p, sid in zip(per_subject, subject_ids) if (sid.split("-")[1] == "fdg") == (tracer_kind == "fdg")]
        if sel:
            by_tracer[tracer_kind] = {m: float(np.nanmean([p[m]["suv_bias_pct_max_abs"] for p in sel if m in p]))
                                      for m in sel[0]}
    wall["total"] = time.time() - t0
    return {"metrics": metrics, "per_subject": per_subject, "subjects": subject_ids, "scoring": scoring,
            "tuned": tuned, "wall_s": wall, "figures": figures, "data": data_info, "by_tracer": by_tracer}
