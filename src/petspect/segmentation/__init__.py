"""Lesion and organ segmentation: classical thresholds, MTV/TLG, autoPET metrics, networks and the study.

* :mod:`~petspect.segmentation.thresholds` -- SUV 2.5, 41/50 % of SUVmax, PERCIST, adaptive, gradient;
* :mod:`~petspect.segmentation.volumes` -- MTV and TLG, per lesion (18-connected components);
* :mod:`~petspect.segmentation.metrics` -- Dice, FP/FN volume, lesion sensitivity, FP per scan (autoPET);
* :mod:`~petspect.segmentation.networks` / :mod:`~petspect.segmentation.train` -- MONAI DynUNet and
  SegResNet, Dice + cross-entropy, lesion-weighted patches, sliding-window inference;
* :mod:`~petspect.segmentation.study` -- ``petspect study segment``.

Importing this package loads NumPy only; SciPy, scikit-image, torch and MONAI load inside the functions.
"""

from petspect.segmentation.metrics import METRIC_NAMES, SegmentationScores, score_segmentation
from petspect.segmentation.thresholds import ThresholdMethod, ThresholdParams, segment_threshold
from petspect.segmentation.volumes import LesionStats, lesion_table, mtv_ml, tlg

__all__ = ["METRIC_NAMES", "SegmentationScores", "score_segmentation", "ThresholdMethod", "ThresholdParams",
           "segment_threshold", "LesionStats", "lesion_table", "mtv_ml", "tlg"]
