"""The CAD study's tables and HTML report: AUCs with intervals, ROC curves, reliability, occlusion maps."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_tables", "build_report", "verdict_lines"]


def write_tables(out: Path, per_task: dict[str, Any]) -> None:
    """``subjects.csv`` (truth, every method's out-of-fold score and probability) and ``reliability.json``."""
    from petspect._fileio import atomic_path
    from petspect._json import write_json

    rows = []
    for task, d in per_task.items():
        for i, spec in enumerate(d["cohort"].subjects):
            row = {"task": task, "subject": spec.subject, "label": spec.label, "severity": spec.severity,
                   "territory": spec.territory or "", "extent": "" if spec.extent is None else spec.extent,
                   "psf_fwhm_mm": spec.psf_fwhm_mm, "peak_counts": spec.peak_counts, "fold": int(d["folds"][i])}
            for name, oof in d["oofs"].items():
                row[f"{name}_score"] = round(float(oof.score[i]), 6)
                row[f"{name}_prob"] = round(float(oof.prob[i]), 6)
            rows.append(row)
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_path(out / "subjects.csv") as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    write_json(out / "reliability.json", {t: d["reliability"] for t, d in per_task.items()}, nonfinite="null")


def verdict_lines(metrics: dict[str, dict[str, Any]], tasks: list[str]) -> list[str]:
    """One sentence per task: which method wins, by how much, and whether the paired interval excludes 0."""
    out = []
    for t in tasks:
        rows = {k.split("/", 1)[1]: r for k, r in metrics.items() if k.startswith(f"{t}/")}
        best = next(m for m, r in rows.items() if "delta_auc" not in r)
        cnn = rows.get("cnn")
        top = max(rows, key=lambda m: rows[m]["auc"])
        text = (f"{t}: highest AUC {top} {rows[top]['auc']:.3f} [{rows[top]['auc_ci95'][0]:.3f}, "
                f"{rows[top]['auc_ci95'][1]:.3f}]; best classical {best} {rows[best]['auc']:.3f}")
        if cnn is not None:
            lo, hi = cnn["delta_auc_ci95"]
            state = ("the CNN wins (interval above 0)" if lo > 0 else "the CNN loses (interval below 0)" if hi < 0
                     else "no significant difference (interval contains 0)")
            text += f"; CNN - {best} = {cnn['delta_auc']:+.3f} [{lo:+.3f}, {hi:+.3f}]: {state}"
        out.append(text)
    return out


SEVERITY_BANDS = (("mild", 0.0, 0.37), ("moderate", 0.37, 0.63), ("severe", 0.63, 1.01))


def severity_table(d: dict[str, Any]) -> list[dict[str, Any]]:
    """AUC of each method for the patients of each severity band against all normals (out-of-fold scores)."""
    from petspect.cad.roc import roc_auc

    y = d["feats"].labels
    sev = np.array([s.severity for s in d["cohort"].subjects])
    rows = []
    for band, lo, hi in SEVERITY_BANDS:
        keep = (y == 0) | ((sev >= lo) & (sev < hi) & (y == 1))
        npat = int((keep & (y == 1)).sum())
        row: dict[str, Any] = {"band": f"{band} [{lo:.2f}, {min(hi, 1.0):.2f})", "patients": npat}
        for name, oof in d["oofs"].items():
            row[name] = roc_auc(y[keep], oof.score[keep]) if npat else float("nan")
        rows.append(row)
    return rows


def _roc_figure(task: str, d: dict[str, Any]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from petspect.cad.roc import roc_auc, roc_curve

    y = d["feats"].labels
    fig, ax = plt.subplots(1, 2, figsize=(9, 4))
    for name, oof in d["oofs"].items():
        fpr, tpr = roc_curve(y, oof.score)
        ax[0].plot(fpr, tpr, label=f"{name} ({roc_auc(y, oof.score):.2f})")
        rel = [r for r in d["reliability"][name] if r["n"] > 0]
        ax[1].plot([r["mean_predicted"] for r in rel], [r["observed_fraction"] for r in rel], "o-", label=name)
    ax[0].plot([0, 1], [0, 1], "k:", lw=0.8)
    ax[0].set(xlabel="1 - specificity", ylabel="sensitivity", title=f"{task}: out-of-fold ROC")
    ax[1].plot([0, 1], [0, 1], "k:", lw=0.8)
    ax[1].set(xlabel="mean predicted probability", ylabel="observed fraction diseased", title="reliability (5 bins)")
    ax[0].legend(fontsize=8)
    ax[1].legend(fontsize=8)
    return fig


def _occlusion_figure(task: str, d: dict[str, Any], n_subjects: int):
    """Mean occlusion map over the last fold's diseased test subjects, with their mean input (central slices)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from petspect.cad.cnn import occlusion_map

    feats, folds = d["feats"], d["folds"]
    k = int(folds.max())
    model = d["models"]["cnn"][k]
    test = np.flatnonzero((folds == k) & (feats.labels == 1))[:max(1, n_subjects)]
    maps = [occlusion_map(model.model, feats.cnn_inputs[i], model.normal_mean[0].numpy(),
                          patch=max(2, feats.cnn_inputs.shape[1] // 8)) for i in test]
    occ, img = np.mean(maps, axis=0), feats.cnn_inputs[test].mean(0)
    normal = feats.cnn_inputs[feats.labels == 0].mean(0)
    zc, yc, xc = (n // 2 for n in img.shape)
    views = [("axial", lambda a: a[zc]), ("coronal", lambda a: a[:, yc][::-1]), ("sagittal", lambda a: a[:, :, xc][::-1])]
    fig, ax = plt.subplots(3, 3, figsize=(9, 8.5))
    vmax = float(np.abs(occ).max()) or 1.0
    for j, (name, cut) in enumerate(views):
        ax[0, j].imshow(cut(normal), cmap="gray")
        ax[0, j].set_title(f"normals' mean ({name})", fontsize=9)
        ax[1, j].imshow(cut(img), cmap="gray")
        ax[1, j].set_title(f"patients' mean ({len(test)})", fontsize=9)
        im = ax[2, j].imshow(cut(occ), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
        ax[2, j].set_title("occlusion: logit drop", fontsize=9)
    for a in ax.flat:
        a.axis("off")
    fig.colorbar(im, ax=ax[2].tolist(), shrink=0.7)
    fig.suptitle(f"{task}: where the CNN looks (fold {k} test patients)")
    return fig


def _zscore_figure(task: str, d: dict[str, Any]):
    """Mean z-score (vs the normals) of the diseased subjects: where the database sees the disease."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from petspect.cad.baselines import NormalDatabase

    feats = d["feats"]
    db = NormalDatabase(feats.maps[feats.labels == 0])
    z = db.z(feats.maps[feats.labels == 1]).mean(0)
    fig, ax = plt.subplots(1, 1, figsize=(5, 3.2))
    if task == "mpi":
        im = ax.imshow(z.reshape(16, 36), cmap="magma", aspect="auto", extent=(-90, 270, 90, 0))
        ax.set(xlabel="phi (deg): 0 anterior, 90 septal, 180 inferior, 270 lateral", ylabel="theta (deg, 0 apex)")
    else:
        from petspect.cad.regions import brain_regions

        vol = d["cohort"].volumes[0]
        reg = brain_regions(vol)
        full = np.zeros(vol.shape)
        full[reg.brain] = z
        zc = int(np.argwhere(reg.brain)[:, 0].mean()) if task == "ad" else \
            int(np.argwhere(reg["putamen_left"])[:, 0].mean())
        im = ax.imshow(full[zc], cmap="magma", vmin=0)
        ax.axis("off")
    fig.colorbar(im, ax=ax)
    ax.set_title(f"{task}: patients' mean z-score vs normals")
    return fig


def build_report(per_task: dict[str, Any], metrics: dict[str, dict[str, Any]], summary: Any, settings: Any,
                 device: str):
    """The HTML report (petspect.report.HtmlReport)."""
    from petspect.report import HtmlReport

    rep = HtmlReport("petspect CAD study", f"preset {settings.preset}, device {device}")
    rep.heading("Verdict")
    for line in verdict_lines(metrics, list(per_task)):
        rep.paragraph(line)
    rep.heading("Acceptance checks (written before scoring)")
    rep.table([{"check": c.check, "result": {True: "passed", False: "FAILED", None: "not evaluated"}[c.passed],
                "detail": c.detail} for c in summary.checks])
    rep.heading("Metrics (out-of-fold, 95 % stratified bootstrap intervals over subjects)")
    rows = []
    for key, r in metrics.items():
        rows.append({"method": key, "auc": r["auc"], "auc 95% CI": f"[{r['auc_ci95'][0]:.3f}, {r['auc_ci95'][1]:.3f}]",
                     "delta_auc vs best classical": "" if "delta_auc" not in r else
                     f"{r['delta_auc']:+.3f} [{r['delta_auc_ci95'][0]:+.3f}, {r['delta_auc_ci95'][1]:+.3f}]",
                     "sensitivity": r["sensitivity"], "specificity": r["specificity"], "brier": r["brier"]})
    rep.table(rows, floatfmt=".3f")
    for task, d in per_task.items():
        rep.heading(f"{task}: {d['cohort'].describe()['description']}")
        rep.paragraph(f"{len(d['feats'].labels)} subjects, {int(d['folds'].max()) + 1} stratified folds; comparator "
                      f"{d['best']}. Severity of the patients: {np.min([s.severity for s in d['cohort'].subjects if s.label]):.2f}"
                      f"-{np.max([s.severity for s in d['cohort'].subjects if s.label]):.2f}.")
        rep.figure(_roc_figure(task, d), "Out-of-fold ROC curves (AUC in the legend) and reliability of the "
                                         "Platt probabilities")
        rep.table(severity_table(d), floatfmt=".3f", na_rep="-",
                  caption="AUC by disease severity (patients of the band vs all normals; few subjects per band)")
        rep.figure(_zscore_figure(task, d), "Mean z-score of the patients against the normal database")
        try:
            rep.figure(_occlusion_figure(task, d, settings.occlusion_subjects),
                       "Occlusion sensitivity of the CNN: cubes replaced by the normals' mean; red = evidence for disease")
        except Exception as exc:  # a figure must not lose the study's numbers
            rep.paragraph(f"occlusion map not drawn: {exc}")
        rel_rows = [{"method": m, **r} for m, rows_ in d["reliability"].items() for r in rows_]
        rep.table(rel_rows, floatfmt=".3f", caption="Reliability table (probability bins)", na_rep="-")
    rep.heading("How the data were made")
    rep.preformatted("\n".join(summary.notes))
    return rep
