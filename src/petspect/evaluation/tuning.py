"""One tuning search for every method: a grid over the free parameters, a stated budget, validation only.

Every method's free parameters (a filter's FWHM, NLM's strength, MAP's beta and gamma, a network's epoch)
are chosen by :func:`grid_search` with the same :class:`Budget` (the largest number of configurations
scored), against the same validation objective (mean over the validation subjects). When a method's grid
is larger than the budget, a seeded random subset of the grid of the budget's size is scored (Bergstra &
Bengio, JMLR 13:281, 2012: random search beats a coarser grid at equal cost), so no method gets more
trials than another. A network's epoch choice is the trainer's best validation epoch; the number of epochs
it looked at is recorded with the same record (:func:`epoch_choice`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from petspect.errors import InputError

__all__ = ["Budget", "Trial", "TuningResult", "grid_search", "epoch_choice"]


@dataclass(frozen=True)
class Budget:
    """The tuning budget of one method.

    Attributes
    ----------
    max_trials : int
        Most configurations scored on validation.
    seed : int
        Seed of the subset drawn when the grid is larger.
    split : str
        Where the objective is computed ("validation"; anything else is refused by the studies).
    """

    max_trials: int = 16
    seed: int = 0
    split: str = "validation"

    def __post_init__(self) -> None:
        if int(self.max_trials) < 1:
            raise InputError(f"the tuning budget must allow at least one trial, got {self.max_trials}")
        if self.split == "test":
            raise InputError("tuning on the test split is refused: tune on validation")


@dataclass(frozen=True)
class Trial:
    params: dict[str, float]
    score: float


@dataclass
class TuningResult:
    """Outcome of one method's search.

    Attributes
    ----------
    method : str
    best : dict name -> value
    best_score : float
    trials : list of Trial
        Every configuration scored, in the order scored.
    grid_size : int
        Size of the full grid (the trials are all of it when it fits the budget).
    budget : Budget
    objective : str
        What the score is (e.g. "mean validation PSNR, dB").
    """

    method: str
    best: dict[str, float]
    best_score: float
    trials: list[Trial] = field(default_factory=list)
    grid_size: int = 0
    budget: Budget = field(default_factory=Budget)
    objective: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "best": dict(self.best), "best_score": self.best_score,
                "trials": [asdict(t) for t in self.trials], "grid_size": self.grid_size,
                "budget": asdict(self.budget), "objective": self.objective}


def _grid(space: Mapping[str, Sequence[float]]) -> list[dict[str, float]]:
    if not space:
        raise InputError("the search space has no parameter")
    names = list(space)
    for n in names:
        if len(space[n]) == 0:
            raise InputError(f"parameter {n!r} has no candidate value")
    return [dict(zip(names, (float(v) for v in vals))) for vals in itertools.product(*(space[n] for n in names))]


def grid_search(method: str, objective: Callable[[dict[str, float]], float], space: Mapping[str, Sequence[float]],
                budget: Budget, *, maximise: bool = True, objective_name: str = "") -> TuningResult:
    """Score configurations of ``space`` with ``objective`` within ``budget``; keep the best.

    Parameters
    ----------
    method : str
    objective : callable(params) -> float
        Mean validation score of a configuration (NaN counts as worst).
    space : mapping name -> candidate values
    budget : Budget
    maximise : bool
        Higher scores are better (PSNR); False for losses.
    objective_name : str

    Returns
    -------
    TuningResult
        Ties go to the configuration scored first (the grid's order).
    """
    grid = _grid(space)
    n = len(grid)
    if n > budget.max_trials:
        rng = np.random.default_rng(int(budget.seed))
        keep = sorted(rng.choice(n, size=int(budget.max_trials), replace=False).tolist())
        grid = [grid[i] for i in keep]
    trials: list[Trial] = []
    best: dict[str, float] | None = None
    best_score = -math.inf
    for params in grid:
        s = float(objective(dict(params)))
        trials.append(Trial(dict(params), s))
        key = s if maximise else -s
        if not math.isnan(key) and (best is None or key > best_score):
            best, best_score = params, key
    if best is None:
        raise InputError(f"every configuration of {method!r} scored NaN on validation")
    return TuningResult(method, dict(best), best_score if maximise else -best_score, trials, n, budget, objective_name)


def epoch_choice(method: str, history: Sequence[Mapping[str, float]], metric: str = "val_psnr",
                 budget: Budget | None = None, *, maximise: bool = True) -> TuningResult:
    """The network's epoch choice as a tuning record: the best validation epoch of its training history.

    Parameters
    ----------
    history : sequence of {"epoch", metric, ...}
        The trainer's per-epoch records (validation metric computed on the validation split).
    metric : str
    budget : Budget, optional
        Recorded with the result (an epoch is one trial; the epochs count as the grid).
    """
    pts = [(int(h["epoch"]), float(h[metric])) for h in history if metric in h and math.isfinite(float(h[metric]))]
    if not pts:
        raise InputError(f"the training history has no {metric!r}: the epoch cannot be chosen on validation")
    sign = 1.0 if maximise else -1.0
    ep, score = max(pts, key=lambda p: (sign * p[1], -p[0]))
    return TuningResult(method, {"epoch": float(ep)}, score, [Trial({"epoch": float(e)}, s) for e, s in pts], len(pts),
                        budget or Budget(max_trials=len(pts)), f"{metric} on the validation split")
