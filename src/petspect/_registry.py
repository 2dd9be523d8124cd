"""Named presets, one registry per kind, with one lookup that names the choices on a miss.

petspect keeps each kind of preset in a :class:`Registry`: PET scanners
(:data:`petspect.geometry.pet.PET_SCANNERS`), SPECT systems (:data:`petspect.geometry.spect.SPECT_SYSTEMS`),
cohort presets (:data:`petspect.simulate.presets.PRESETS`), demo settings
(:data:`petspect.tasks.demo.DEMO_PRESETS`), detector studies (:data:`petspect.detector.pipeline.PRESETS`),
scintillators (:data:`petspect.detector.crystals.CRYSTALS`) and SPECT collimators
(:data:`petspect.systems.collimators.COLLIMATORS`). A registry reads like a read-only dict
(``name in reg``, ``sorted(reg)``, ``reg.get(name, default)``, ``reg[name] = preset`` to add or replace,
``register`` to add only); ``reg[name]`` and ``reg.lookup(name)``
are case-insensitive and raise :class:`UnknownNameError` (a :class:`~petspect.errors.ConfigError` and
a :class:`KeyError`) listing the registered names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar, overload

from petspect.errors import ConfigError

T = TypeVar("T")

__all__ = ["Registry", "UnknownNameError"]


class UnknownNameError(ConfigError, KeyError):
    """A preset name that its registry does not hold (the message lists the names it does)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return Exception.__str__(self)


class Registry(Mapping[str, T], Generic[T]):
    """Presets of one kind, by name.

    Parameters
    ----------
    kind : str
        What the entries are, for messages ("PET scanner", "cohort preset", ...).
    entries : mapping of str to T, optional
        Initial entries (names are stored as given; lookups ignore case).
    hint : str
        Appended to the error message (e.g. "or give a .toml file").
    """

    def __init__(self, kind: str, entries: Mapping[str, T] | None = None, *, hint: str = "") -> None:
        self.kind, self.hint = str(kind), str(hint)
        self._entries: dict[str, T] = {}
        for name, value in (entries or {}).items():
            self.register(name, value)

    # ------------------------------------------------------------------ adding
    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, value: T) -> T: ...

    def register(self, name, value=None):  # type: ignore[no-untyped-def]
        """Add ``value`` under ``name`` (or, without ``value``, return a decorator that does).

        Raises :class:`~petspect.errors.ConfigError` when the name (ignoring case) is taken.
        """
        if value is None:
            return lambda v: self.register(name, v)
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if self._key(name) is not None:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = value
        return value

    def __setitem__(self, name: str, value: T) -> None:
        """``reg[name] = value`` adds or replaces an entry (``register`` refuses a taken name)."""
        key = self._key(name)
        if key is not None:
            del self._entries[key]
        self.register(name, value)

    def __delitem__(self, name: str) -> None:
        key = self._key(name)
        if key is None:
            raise KeyError(name)
        del self._entries[key]

    # ------------------------------------------------------------------ lookup
    def _key(self, name: object) -> str | None:
        if not isinstance(name, str):
            return None
        if name in self._entries:
            return name
        low = name.lower()
        return next((k for k in self._entries if k.lower() == low), None)

    def lookup(self, name: str) -> T:
        """The entry registered as ``name`` (case-insensitive).

        Raises
        ------
        UnknownNameError
            Naming the kind and listing the registered names.
        """
        key = self._key(name)
        if key is None:
            hint = f" {self.hint}" if self.hint else ""
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose one of {self.names()}{hint}")
        return self._entries[key]

    __getitem__ = lookup

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return self._key(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
