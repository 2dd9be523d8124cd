"""The iteration loop shared by the iterative algorithms: subsets, callbacks, progress, post-filter.

An algorithm (:mod:`~petspect.recon.em`, :mod:`~petspect.recon.map`) is a *subset update*
``x <- step(x, k)``; this module runs the updates over iterations and subsets, reports to callbacks and
applies an optional image-space post-filter to the result.

Callbacks
---------
A callback is called after each full iteration as ``callback(iteration, image, objective)``:
``iteration`` counts from 1, ``image`` is the current iterate (not post-filtered; do not modify it in
place) and ``objective`` the value of the algorithm's objective (Poisson log-likelihood, or the penalised
log-likelihood for MAP) when ``compute_objective=True``, else None (it costs one extra forward
projection per iteration). :class:`History` records them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from petspect.errors import InputError
from petspect.progress import track

__all__ = ["Callback", "History", "run_iterations"]

Callback = Callable[[int, torch.Tensor, "float | None"], None]


@dataclass
class History:
    """A callback that records the objective per iteration and, optionally, copies of the images.

    Parameters
    ----------
    keep_images : bool
        Keep a detached copy of the image after each iteration (memory grows with iterations).
    """

    keep_images: bool = False
    iterations: list[int] = field(default_factory=list)
    objective: list[float | None] = field(default_factory=list)
    images: list[torch.Tensor] = field(default_factory=list)

    def __call__(self, iteration: int, image: torch.Tensor, objective: float | None) -> None:
        self.iterations.append(iteration)
        self.objective.append(objective)
        if self.keep_images:
            self.images.append(image.detach().clone())


def _as_callbacks(callback: Callback | list[Callback] | None) -> list[Callback]:
    if callback is None:
        return []
    return list(callback) if isinstance(callback, (list, tuple)) else [callback]


def run_iterations(x: torch.Tensor, step: Callable[[torch.Tensor, int], torch.Tensor], *, n_iter: int,
                   n_subsets: int, objective: Callable[[torch.Tensor], float] | None = None,
                   callback: Callback | list[Callback] | None = None,
                   post_filter: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   description: str = "reconstruction", progress: bool | None = None) -> torch.Tensor:
    """Run ``n_iter`` iterations of ``n_subsets`` subset updates ``x = step(x, k)``.

    Parameters
    ----------
    x : torch.Tensor
        Start image.
    step : callable ``(x, k) -> x``
        One subset update.
    n_iter, n_subsets : int
        Iterations (>= 0) and subsets per iteration (>= 1); subsets are visited in order 0..n-1.
    objective : callable ``x -> float``, optional
        Evaluated after each iteration and passed to the callbacks (None: callbacks get None).
    callback : callable or list of callables, optional
        ``callback(iteration, image, objective)`` after each iteration.
    post_filter : callable ``x -> x``, optional
        Applied to the final image only (e.g. :class:`~petspect.recon.filters.GaussianFilter`).
    description : str
        Progress bar text.
    progress : bool, optional
        Force the progress bar on/off (default: on unless ``PETSPECT_NO_PROGRESS`` is set).
    """
    if n_iter < 0:
        raise InputError(f"n_iter must be >= 0, got {n_iter}")
    callbacks = _as_callbacks(callback)
    with torch.no_grad():
        for it in track(range(n_iter), description, enabled=progress):
            for k in range(n_subsets):
                x = step(x, k)
            if callbacks:
                value = objective(x) if objective is not None else None
                for cb in callbacks:
                    cb(it + 1, x, value)
        return x if post_filter is None else post_filter(x)
