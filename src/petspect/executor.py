"""Where many independent jobs run: in this process (``local``) or on a Ray cluster (``ray``).

Cohort simulation (:func:`petspect.simulate.cohort.simulate_cohort`) and batch inference
(:func:`petspect.tasks.apply.apply_many`) run one job per subject or study; with the Ray executor each
job is a Ray task (or an actor call), scheduled over every node of a cluster. Ray is an optional
dependency (``pip install 'petspect[ray]'``), imported only when the Ray executor is asked for.

* No address: the command starts a private local Ray instance (``address="local"``, so it never
  attaches to another one by accident) with at most ``num_cpus`` CPUs, no dashboard and no worker log
  forwarding, and shuts it down at the end.
* ``address`` (``"auto"``, ``"HOST:6379"`` or ``"ray://HOST:10001"``): the command connects to a running
  cluster (``ray start --head`` on the head node, ``ray start --address HOST:6379`` on the others),
  and disconnects at the end, leaving the cluster running. petspect must be installed (same version)
  on every node.
* A Ray already initialised in this process (e.g. by the caller's script) is used as it is and left running.

A job's result returns through Ray's object store, so the nodes need no shared file system: every file
is written by the calling process.

Multi-node *training* does not use this: it runs under ``torchrun`` (:mod:`petspect.train.ddp_entry`).
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from petspect.errors import InputError, MissingDependencyError, PetspectError
from petspect.progress import track


class Executor(str, enum.Enum):
    """Where independent jobs run."""

    LOCAL = "local"  #: in this process (or its own process pool)
    RAY = "ray"  #: Ray tasks on a local or remote Ray cluster


def parse_executor(value: str | Executor) -> Executor:
    """The :class:`Executor` named by ``value`` (``"local"`` or ``"ray"``), or :class:`InputError`."""
    try:
        return Executor(value)
    except ValueError:
        raise InputError(f"unknown executor {value!r}; choose one of {[e.value for e in Executor]}") from None


def import_ray() -> Any:
    """Import Ray, or raise :class:`MissingDependencyError` naming the ``ray`` extra."""
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError("the ray executor needs Ray, which is not installed: "
                                     "pip install 'petspect[ray]'") from exc
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Yield the ``ray`` module with a connected Ray runtime.

    Parameters
    ----------
    address : str, optional
        A running cluster to connect to (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``); None
        starts a private local instance, shut down on exit.
    num_cpus : int, optional
        CPUs of the local instance (default: Ray's, all cores); ignored with ``address``.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    common = {"log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address:
            ray.init(address=address, **common)
        else:
            if num_cpus is not None and num_cpus < 1:
                raise InputError(f"num_cpus must be at least 1, got {num_cpus}")
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **common)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        if isinstance(exc, PetspectError):
            raise
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise InputError(f"cannot start or reach {where}: {exc}") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _unwrap(ray: Any, exc: BaseException) -> BaseException:
    """The petspect error raised inside a Ray task, if that is what ``exc`` carries."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(exc, ray.exceptions.RayTaskError) and isinstance(cause, PetspectError) else exc


def ray_map(ray: Any, fn: Callable[..., Any], jobs: Sequence[tuple], *, num_cpus: float = 1, num_gpus: float = 0,
            description: str = "jobs", show_progress: bool | None = None) -> Iterator[tuple[int, Any]]:
    """Run ``fn(*job)`` for every job as a Ray task; yield ``(job index, result)`` as they complete.

    Parameters
    ----------
    ray : module
        From :func:`ray_session`.
    fn : callable
        A module-level function (importable on the workers).
    jobs : sequence of tuples
        Positional arguments of each call.
    num_cpus, num_gpus : float
        Resources each task reserves (one CPU thread per task keeps results independent of the packing).
    description, show_progress
        Progress bar.

    Raises
    ------
    PetspectError
        The first error a task raised, as it was raised there (other failures as Ray reports them).
    """
    remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)(fn)
    refs = {remote.remote(*job): i for i, job in enumerate(jobs)}
    pending = list(refs)

    def completed() -> Iterator[tuple[int, Any]]:
        nonlocal pending
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield refs[done[0]], ray.get(done[0])

    try:
        yield from track(completed(), description, total=len(refs), enabled=show_progress)
    except Exception as exc:
        for ref in pending:
            ray.cancel(ref, force=True)
        err = _unwrap(ray, exc)
        if err is exc:
            raise
        raise err from None


def ray_actor_map(ray: Any, cls: type, init_args: tuple, method: str, jobs: Sequence[tuple], *, n_actors: int,
                  num_cpus: float = 1, num_gpus: float = 0, description: str = "jobs",
                  show_progress: bool | None = None) -> Iterator[tuple[int, Any]]:
    """Run ``cls(*init_args).method(*job)`` on a pool of Ray actors; yield ``(job index, result)`` as they complete.

    Each actor is built once (e.g. loads a network once) and takes one job at a time; a freed actor
    takes the next job. ``num_cpus`` / ``num_gpus`` are reserved per actor. Errors as in :func:`ray_map`;
    the actors are stopped at the end.
    """
    if n_actors < 1:
        raise InputError(f"n_actors must be at least 1, got {n_actors}")
    actor_cls = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0)(cls)
    actors = [actor_cls.remote(*init_args) for _ in range(min(n_actors, len(jobs)))]
    queue = list(enumerate(jobs))[::-1]
    running: dict[Any, tuple[int, Any]] = {}

    def submit(actor: Any) -> None:
        if queue:
            i, job = queue.pop()
            running[getattr(actor, method).remote(*job)] = (i, actor)

    def completed() -> Iterator[tuple[int, Any]]:
        for actor in actors:
            submit(actor)
        while running:
            done, _ = ray.wait(list(running), num_returns=1)
            i, actor = running.pop(done[0])
            result = ray.get(done[0])
            submit(actor)
            yield i, result

    try:
        yield from track(completed(), description, total=len(jobs), enabled=show_progress)
    except Exception as exc:
        err = _unwrap(ray, exc)
        if err is exc:
            raise
        raise err from None
    finally:
        for actor in actors:
            ray.kill(actor)
