"""The clinic's diagnostic baselines: SUVR, SBR, voxel z-scores against normals, polar-map scores, a regional SVM.

Every method turns a subject into one score (higher = more likely diseased) and has the same life cycle
in cross-validation (:mod:`petspect.cad.crossval`): ``fit`` on the training subjects returns *honest* scores of
those subjects (not flattered by having seen them: leave-one-out z-scores for the normals inside the
database, inner cross-validated decision values for the SVM), which fix the decision threshold and the
probability map of every method alike; ``score`` scores unseen subjects.

Per task (:func:`task_features`):

* ``ad`` -- images normalised to the reference region (cerebellum by default, or pons; Minoshima 1995 uses
  the pons, many centres the cerebellum); ``suvr``: mean of the AD target regions (posterior cingulate,
  parietal, temporal; :data:`petspect.cad.regions.AD_TARGETS`) over the reference, negated;
* ``pd`` -- images over the occipital reference; ``sbr``: the lower of the two putamen specific binding
  ratios ``(C_putamen - C_occipital) / C_occipital`` (Darcourt J et al, EJNMMI 2010;37:443-450), negated;
* ``mpi`` -- polar maps normalised to their 95th percentile (as QPS/4D-MSPECT normalise to the maximum);
  ``sss``: a summed stress score over the 17 segments, each segment scored 0-4 by its z-score against the
  normal database (z > -2: 0, -2..-3: 1, -3..-4: 2, -4..-5: 3, <= -5: 4), a stand-in for the visual
  summed stress score (Berman DS et al, J Nucl Cardiol 2004;11:414-423) that software derives the same way.
* ``zscore`` (all tasks) -- a normal database (voxel or polar-bin mean and SD of the training normals,
  as 3D-SSP/Neurostat and QPS do; Minoshima S et al, J Nucl Med 1995;36:1238-1248); the score is the
  mean over the task's target (AD regions; striatum; the whole polar map) of ``z`` where ``z`` exceeds a
  threshold (2 for brain, 2.5 for polar maps), i.e. extent x severity of the abnormality;
* ``svm_regional`` -- a linear SVM (scikit-learn ``SVC``) on the normalised regional values (12 cortical
  regions; 6 striatal SBRs; 17 segments), standardised on the training folds, ``C`` chosen by an inner
  3-fold cross-validation on the training folds only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from petspect.cad.cohort import CadTask, Cohort
from petspect.errors import InputError

__all__ = ["TaskFeatures", "task_features", "NormalDatabase", "FixedScore", "ZScoreMethod", "SummedScoreMethod",
           "RegionalSVM", "image_features", "BRAIN_REFERENCES"]

BRAIN_REFERENCES = ("cerebellum", "pons")
_PD_REGIONS = ("caudate_left", "caudate_right", "putamen_left_anterior", "putamen_right_anterior",
               "putamen_left_posterior", "putamen_right_posterior")


@dataclass
class TaskFeatures:
    """What every method of a task sees, computed once per subject without fitting anything.

    Attributes
    ----------
    task : CadTask
    labels : (n,) int
    maps : (n, k) float
        Normalised voxel values inside the brain (or polar-map bins) for the z-score database.
    target : (k,) bool
        Where the z-score method sums abnormality.
    regional : (n, r) float
        Normalised regional values (SVM input; segment means for MPI).
    regional_names : list of str
    clinical : dict str -> (n,) float
        Fixed-rule scores (``suvr``, ``sbr``), higher = more likely diseased.
    cnn_inputs : (n, z, y, x) float32
        Normalised images for the CNN (brain: the reference-normalised image cropped to the brain; MPI: a
        cube around the LV divided by the polar-map normaliser).
    info : dict
    """

    task: CadTask
    labels: np.ndarray
    maps: np.ndarray
    target: np.ndarray
    regional: np.ndarray
    regional_names: list[str]
    clinical: dict[str, np.ndarray]
    cnn_inputs: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)


def _crop_box(mask: np.ndarray, margin: int = 1) -> tuple[slice, ...]:
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + 1 + margin, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def image_features(task: CadTask | str, images: np.ndarray, volumes: list, frames: list | None = None,
                   *, reference: str = "cerebellum") -> dict[str, Any]:
    """Per-subject normalised maps, regional values and fixed-rule scores of images ``(n, z, y, x)``.

    Used by :func:`task_features` for a cohort and by ``petspect cad`` for a single image.
    """
    task = CadTask(task)
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 4 or images.shape[0] != len(volumes):
        raise InputError("images must be (n, z, y, x) with one grid Volume per image")
    if task is CadTask.MPI:
        from petspect.cad.polar import polar_map, segment_means

        if not frames or len(frames) != len(volumes):
            raise InputError("MPI analysis needs one LV frame per image")
        maps, regional, crops = [], [], []
        for img, vol, fr in zip(images, volumes, frames):
            pm = polar_map(img, vol, fr)
            norm = float(np.quantile(pm, 0.95))
            if not norm > 0:
                raise InputError("the polar map is empty: is the LV frame on the heart?")
            maps.append((pm / norm).ravel())
            regional.append(segment_means(pm / norm))
            centre = np.asarray(fr["c"]) + 0.5 * fr["long_mm"] * np.asarray(fr["u"])
            crops.append(_cube(img / norm, vol, centre, 132.0))
        maps_a = np.asarray(maps)
        return {"maps": maps_a, "target": np.ones(maps_a.shape[1], dtype=bool), "regional": np.asarray(regional),
                "regional_names": [f"segment_{k}" for k in range(1, 18)], "clinical": {},
                "cnn_inputs": np.stack(crops).astype(np.float32), "info": {"normalisation": "polar-map p95"}}
    from petspect.cad.regions import AD_CONTROLS, AD_TARGETS, brain_regions

    reg = brain_regions(volumes[0])
    if any(tuple(v.shape) != tuple(volumes[0].shape) for v in volumes):
        raise InputError("brain images must share the template grid")
    if task is CadTask.AD:
        if reference not in BRAIN_REFERENCES:
            raise InputError(f"FDG reference must be one of {BRAIN_REFERENCES}, got {reference!r}")
        ref_name, names, target = reference, list(AD_TARGETS) + list(AD_CONTROLS), reg.union(AD_TARGETS)
    else:
        ref_name, names = "occipital_dat", list(_PD_REGIONS)
        target = reg.union(("caudate_left", "caudate_right", "putamen_left", "putamen_right"))
    ref = np.array([img[reg[ref_name]].mean() for img in images])
    if not (ref > 0).all():
        raise InputError(f"the reference region ({ref_name}) has no positive mean uptake in some image (is the "
                         f"image spatially normalised to the study's template space?)")
    norm = images / ref[:, None, None, None]
    brain = reg.brain
    means = np.array([[im[reg[n]].mean() for n in names] for im in norm])
    if task is CadTask.AD:
        tmean = np.array([im[reg.union(AD_TARGETS)].mean() for im in norm])
        clinical = {"suvr": -tmean}
        regional = means
    else:
        regional = means - 1.0  # SBR = C / C_ref - 1
        put = np.array([[im[reg[f"putamen_{s}"]].mean() - 1.0 for s in ("left", "right")] for im in norm])
        clinical = {"sbr": -put.min(axis=1)}
    box = _crop_box(brain)
    return {"maps": norm[:, brain], "target": target[brain], "regional": regional, "regional_names": names,
            "clinical": clinical, "cnn_inputs": norm[(slice(None), *box)].astype(np.float32),
            "info": {"reference": ref_name, "n_voxels": int(brain.sum()), "n_target": int(target.sum())}}


def _cube(img: np.ndarray, vol, centre_mm: np.ndarray, size_mm: float) -> np.ndarray:
    """A cube of ``size_mm`` centred on an LPS point (zero outside the image), in voxels of the image."""
    n = int(round(size_mm / float(vol.spacing_mm[0])))
    c = np.round(np.asarray(vol.world_to_voxel(centre_mm), dtype=np.float64)).astype(int)
    out = np.zeros((n, n, n), dtype=np.float64)
    lo = c - n // 2
    src = [slice(max(a, 0), min(a + n, s)) for a, s in zip(lo, img.shape)]
    dst = [slice(s.start - a, s.stop - a) for s, a in zip(src, lo)]
    if all(s.stop > s.start for s in src):
        out[tuple(dst)] = img[tuple(src)]
    return out


def task_features(cohort: Cohort, *, reference: str = "cerebellum") -> TaskFeatures:
    """The features of every subject of a cohort (no fitting; see the module docstring)."""
    f = image_features(cohort.task, cohort.images, cohort.volumes, cohort.frames, reference=reference)
    return TaskFeatures(cohort.task, cohort.labels.copy(), f["maps"], f["target"], f["regional"],
                        f["regional_names"], f["clinical"], f["cnn_inputs"], f["info"])


class NormalDatabase:
    """Mean and SD of normal subjects per voxel/bin, with leave-one-out z-scores for its own members.

    ``z = (mean - x) / sd``: positive where a subject is *below* normal (hypometabolism, lost binding,
    a perfusion defect). ``sd`` is floored at ``sd_floor`` x the median SD, so a voxel with little
    variation among the normals does not explode.
    """

    def __init__(self, normals: np.ndarray, *, sd_floor: float = 0.25) -> None:
        x = np.asarray(normals, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 3:
            raise InputError(f"a normal database needs at least 3 normal subjects, got {x.shape[0] if x.ndim else 0}")
        self.n = x.shape[0]
        self._s, self._ss = x.sum(0), (x * x).sum(0)
        self.mean = self._s / self.n
        self.sd = np.sqrt(np.maximum(self._ss / self.n - self.mean ** 2, 0.0) * self.n / (self.n - 1))
        self._floor = float(sd_floor) * float(np.median(self.sd[self.sd > 0])) if (self.sd > 0).any() else 1.0
        self._members = x

    def z(self, x: np.ndarray) -> np.ndarray:
        """z-scores of subjects ``(m, k)`` that are not in the database."""
        return (self.mean - np.asarray(x, dtype=np.float64)) / np.maximum(self.sd, self._floor)

    def z_loo(self) -> np.ndarray:
        """z-scores of the database's own members, each against the database without it ``(n, k)``."""
        x, n = self._members, self.n
        m = (self._s - x) / (n - 1)
        var = np.maximum((self._ss - x * x - (n - 1) * m * m) / (n - 2), 0.0) if n > 2 else np.zeros_like(x)
        return (m - x) / np.maximum(np.sqrt(var), self._floor)


class FixedScore:
    """A fixed-rule score (SUVR, SBR): nothing to fit."""

    def __init__(self, name: str) -> None:
        self.name = name

    def fit(self, feats: TaskFeatures, train: np.ndarray) -> np.ndarray:
        return feats.clinical[self.name][train]

    def score(self, feats: TaskFeatures, test: np.ndarray) -> np.ndarray:
        return feats.clinical[self.name][test]


class _DatabaseMethod(ABC):
    """Shared fitting of the database methods: normals of the training folds, honest (LOO) training scores.

    Subclasses say which values form the database (``_source``) and how z-scores become a score (``_stat``).
    """

    @abstractmethod
    def _source(self, feats: TaskFeatures) -> np.ndarray:
        """The per-subject values (subjects first) the normal database is built from."""

    @abstractmethod
    def _stat(self, z: np.ndarray, feats: TaskFeatures) -> np.ndarray:
        """One abnormality score per subject from its z-scores."""

    def fit(self, feats: TaskFeatures, train: np.ndarray) -> np.ndarray:
        x = self._source(feats)
        y = feats.labels[train]
        normals = train[y == 0]
        self.db = NormalDatabase(x[normals])
        out = np.empty(train.size)
        out[y == 0] = self._stat(self.db.z_loo(), feats)
        out[y == 1] = self._stat(self.db.z(x[train[y == 1]]), feats)
        return out

    def score(self, feats: TaskFeatures, test: np.ndarray) -> np.ndarray:
        return self._stat(self.db.z(self._source(feats)[test]), feats)


class ZScoreMethod(_DatabaseMethod):
    """Voxel (or polar-bin) z-scores; score = mean over the target of z where z > ``z_threshold``."""

    name = "zscore"

    def __init__(self, z_threshold: float = 2.0) -> None:
        self.z_threshold = float(z_threshold)

    def _source(self, feats: TaskFeatures) -> np.ndarray:
        return feats.maps

    def _stat(self, z: np.ndarray, feats: TaskFeatures) -> np.ndarray:
        zt = z[:, feats.target]
        return np.where(zt > self.z_threshold, zt, 0.0).mean(axis=1)


class SummedScoreMethod(_DatabaseMethod):
    """MPI summed score: 17 segment z-scores against normals mapped to 0-4 and summed (0-68)."""

    name = "sss"

    def _source(self, feats: TaskFeatures) -> np.ndarray:
        return feats.regional

    def _stat(self, z: np.ndarray, feats: TaskFeatures) -> np.ndarray:
        return np.clip(np.floor(z - 1.0), 0, 4).sum(axis=1)


class RegionalSVM:
    """Linear SVM on regional values; ``C`` by inner stratified 3-fold CV (ROC AUC) on the training folds."""

    name = "svm_regional"
    C_GRID = (0.01, 0.1, 1.0, 10.0)

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def fit(self, feats: TaskFeatures, train: np.ndarray) -> np.ndarray:
        from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        x, y = feats.regional[train], feats.labels[train]
        n_inner = int(max(2, min(3, np.bincount(y, minlength=2).min())))
        inner = StratifiedKFold(n_splits=n_inner, shuffle=True, random_state=self.seed)
        pipe = make_pipeline(StandardScaler(), SVC(kernel="linear"))
        search = GridSearchCV(pipe, {"svc__C": list(self.C_GRID)}, scoring="roc_auc", cv=inner, n_jobs=1)
        search.fit(x, y)
        self.C = float(search.best_params_["svc__C"])
        self.model = search.best_estimator_
        honest = cross_val_predict(make_pipeline(StandardScaler(), SVC(kernel="linear", C=self.C)), x, y, cv=inner,
                                   method="decision_function", n_jobs=1)
        return np.asarray(honest, dtype=np.float64)

    def score(self, feats: TaskFeatures, test: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.decision_function(feats.regional[test]), dtype=np.float64)
