"""Radiomics benchmark: the IBSI digital phantom against the IBSI reference, extraction time on lesion-sized
ROIs, and nested cross-validated models on a simulated lesion cohort.

Run: ``.venv/bin/python benchmarks/bench_radiomics.py [--n-lesions 80] [--radii-mm 10 20 35]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from petspect.radiomics import extract_features, load_settings
from petspect.radiomics.deep import deep_features, roi_patch, train_deep_features
from petspect.radiomics.models import feature_matrix, nested_cv, simulate_lesion_cohort
from petspect.radiomics.reference import compare, digital_phantom


def phantom() -> None:
    img, mask, sp = digital_phantom()
    t0 = time.perf_counter()
    fs = extract_features(img, mask, sp, load_settings("ibsi-digital-phantom"))
    dt = time.perf_counter() - t0
    cmp = compare(fs.values)
    fams: dict[str, list[int]] = {}
    for tag in fs.values:
        fam = tag.split("_")[0]
        fams.setdefault(fam, [0, 0])[0] += 1
        fams[fam][1] += tag not in cmp.mismatches
    print(f"IBSI digital phantom: {cmp.n_computed} features computed, {cmp.n_referenced} with a reference, "
          f"{cmp.n_matched} within tolerance ({100 * cmp.fraction_matched:.1f} %), {len(cmp.missing)} reference "
          f"features not computed; {dt:.2f} s")
    print("  per family (matched/computed): " + ", ".join(f"{k} {v[1]}/{v[0]}" for k, v in fams.items()))
    print(f"  failing families: {cmp.failing_families() or 'none'}")


# petspect tag <- pyradiomics (pyradiomics-bhklab) name, for the optional cross-check on the phantom
_PYRAD = {
    "morph_volume": "shape_MeshVolume", "morph_area_mesh": "shape_SurfaceArea", "morph_sphericity": "shape_Sphericity",
    "morph_diam": "shape_Maximum3DDiameter", "morph_pca_maj_axis": "shape_MajorAxisLength",
    "morph_pca_elongation": "shape_Elongation", "stat_mean": "firstorder_Mean", "stat_var": "firstorder_Variance",
    "stat_skew": "firstorder_Skewness", "stat_energy": "firstorder_Energy", "stat_rmad": "firstorder_RobustMeanAbsoluteDeviation",
    "ih_entropy": "firstorder_Entropy", "ih_uniformity": "firstorder_Uniformity",
    "cm_energy_d1_3d_avg": "glcm_JointEnergy", "cm_contrast_d1_3d_avg": "glcm_Contrast",
    "cm_corr_d1_3d_avg": "glcm_Correlation", "cm_joint_entr_d1_3d_avg": "glcm_JointEntropy",
    "cm_inv_diff_mom_norm_d1_3d_avg": "glcm_Idmn", "cm_info_corr1_d1_3d_avg": "glcm_Imc1",
    "rlm_sre_3d_avg": "glrlm_ShortRunEmphasis", "rlm_lre_3d_avg": "glrlm_LongRunEmphasis",
    "rlm_r_perc_3d_avg": "glrlm_RunPercentage", "szm_sze_3d": "glszm_SmallAreaEmphasis",
    "szm_lze_3d": "glszm_LargeAreaEmphasis", "szm_z_perc_3d": "glszm_ZonePercentage",
    "ngt_coarseness_3d": "ngtdm_Coarseness", "ngt_contrast_3d": "ngtdm_Contrast", "ngt_busyness_3d": "ngtdm_Busyness",
    "ngt_strength_3d": "ngtdm_Strength", "ngl_lde_d1_a0.0_3d": "gldm_SmallDependenceEmphasis",
    "ngl_hde_d1_a0.0_3d": "gldm_LargeDependenceEmphasis",
}


def cross_check() -> None:
    """Optional: the same phantom features from pyradiomics (the pyradiomics-bhklab fork), if importable."""
    try:
        import logging

        import SimpleITK as sitk
        from radiomics import featureextractor
    except ImportError:
        print("pyradiomics cross-check skipped (pyradiomics-bhklab not importable)")
        return
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    img, mask, sp = digital_phantom()
    ours = extract_features(img, mask, sp, load_settings("ibsi-digital-phantom")).values
    si, sm = sitk.GetImageFromArray(img), sitk.GetImageFromArray(mask.astype(np.uint8))
    si.SetSpacing(sp[::-1])
    sm.SetSpacing(sp[::-1])
    ext = featureextractor.RadiomicsFeatureExtractor(binWidth=1, label=1)
    ext.enableAllFeatures()
    res = ext.execute(si, sm)
    diff = {t: (float(res["original_" + k]), ours[t]) for t, k in _PYRAD.items()
            if abs(float(res["original_" + k]) - ours[t]) > 1e-3 * max(1.0, abs(ours[t]))}
    print(f"pyradiomics cross-check on the phantom: {len(_PYRAD) - len(diff)}/{len(_PYRAD)} shared features agree "
          f"to 0.1 %; differ: " + (", ".join(f"{t} (pyradiomics {a:.4g}, petspect {b:.4g})" for t, (a, b) in diff.items())
                                   or "none"))


def timing(radii_mm: list[float]) -> None:
    s = load_settings("pet-suv-fbs0.25")
    rng = np.random.default_rng(0)
    for r in radii_mm:
        n = int(2 * r / 2.0) + 8
        zz, yy, xx = np.meshgrid(*[(np.arange(n) - (n - 1) / 2) * 2.0] * 3, indexing="ij")
        mask = zz ** 2 + yy ** 2 + xx ** 2 <= r ** 2
        img = 1.0 + 6.0 * mask * (1 + 0.2 * rng.standard_normal(mask.shape))
        t0 = time.perf_counter()
        fs = extract_features(img, mask, (2.0, 2.0, 2.0), s)
        print(f"sphere r = {r:.0f} mm at 2 mm voxels ({int(mask.sum())} voxels, {fs.n_levels} grey levels of 0.25 SUV): "
              f"{len(fs.values)} features in {time.perf_counter() - t0:.2f} s")


def models(n: int, deep_epochs: int) -> None:
    t0 = time.perf_counter()
    imgs, masks, y = simulate_lesion_cohort(n, seed=0)
    s = load_settings("pet-suv-fbs0.25")
    rows = [extract_features(i, m, (4.0, 4.0, 4.0), s).values for i, m in zip(imgs, masks)]
    x, tags = feature_matrix(rows)
    print(f"lesion cohort: {n} lesions ({int(y.sum())} heterogeneous), {len(tags)} features, extraction "
          f"{time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    patches = np.stack([roi_patch(i, m) for i, m in zip(imgs, masks)])
    ae = train_deep_features(patches, epochs=deep_epochs, seed=0)  # unsupervised: no label is used
    xd, _ = feature_matrix([deep_features(ae, i, m) for i, m in zip(imgs, masks)])
    print(f"  deep features: 3D autoencoder bottleneck ({xd.shape[1]} features), {deep_epochs} epochs, "
          f"{time.perf_counter() - t0:.0f} s")
    for mdl, feats, xx in (("logistic", "radiomic", x), ("gbm", "radiomic", x), ("logistic", "deep", xd)):
        t0 = time.perf_counter()
        r = nested_cv(xx, y, mdl, outer_folds=5, inner_folds=3, seed=0)
        print(f"  {mdl:8s} on {feats:8s} features, nested 5x3-fold CV AUC {r.auc:.3f} (95 % CI {r.auc_ci95[0]:.3f}-{r.auc_ci95[1]:.3f}; "
              f"folds {', '.join(f'{a:.2f}' for a in r.fold_auc)}) in {time.perf_counter() - t0:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-lesions", type=int, default=80)
    ap.add_argument("--radii-mm", type=float, nargs="+", default=[10.0, 20.0, 35.0])
    ap.add_argument("--deep-epochs", type=int, default=60)
    a = ap.parse_args()
    phantom()
    cross_check()
    timing(a.radii_mm)
    models(a.n_lesions, a.deep_epochs)


if __name__ == "__main__":
    main()
