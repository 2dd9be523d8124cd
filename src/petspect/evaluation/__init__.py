"""One evaluation protocol for every study (denoising, detector, and the studies to come).

* :mod:`~petspect.evaluation.protocol` -- fixed splits from dataset.json, the test split read through one
  function that records ``test_scored`` in a ledger;
* :mod:`~petspect.evaluation.tuning` -- the same search with a stated budget for every method, on validation;
* :mod:`~petspect.evaluation.stats` -- bootstrap intervals over subjects, paired differences, "A beats B";
* :mod:`~petspect.evaluation.observer` -- channelised Hotelling observer detectability (``cho_dprime``);
* :mod:`~petspect.evaluation.calibration` -- coverage of uncertainty maps.

Importing this package loads numpy only; scipy is imported by the functions that need it.
"""

from petspect.evaluation.calibration import Calibration, uncertainty_calibration
from petspect.evaluation.observer import cho_dprime, cho_dprime_ci, laguerre_gauss_channels
from petspect.evaluation.protocol import (Splits, TestScoring, config_hash, read_splits, read_test_split,
                                          record_test_scoring)
from petspect.evaluation.stats import Better, Interval, beats, bootstrap_mean_ci, paired_delta_ci, summarise_methods
from petspect.evaluation.tuning import Budget, TuningResult, epoch_choice, grid_search

__all__ = ["Calibration", "uncertainty_calibration", "cho_dprime", "cho_dprime_ci", "laguerre_gauss_channels",
           "Splits", "TestScoring", "config_hash", "read_splits", "read_test_split", "record_test_scoring",
           "Better", "Interval", "beats", "bootstrap_mean_ci", "paired_delta_ci", "summarise_methods",
           "Budget", "TuningResult", "epoch_choice", "grid_search"]
