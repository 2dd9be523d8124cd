"""The exception hierarchy of petspect.

Every error that petspect raises on bad input derives from :class:`PetspectError`, so callers can
catch one type. Messages name the file (when there is one) and the problem. Most classes also
derive from the matching built-in (``ValueError``, ``FileNotFoundError``, ...), so generic handlers
keep working.
"""

from __future__ import annotations

import os


class PetspectError(Exception):
    """Base class of all petspect errors.

    Parameters
    ----------
    message : str
        What went wrong and, where possible, how to fix it.
    path : str or os.PathLike, optional
        The file or folder concerned; it is prefixed to the message.
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self.message = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class InputError(PetspectError, ValueError):
    """An argument or input value is invalid (wrong shape, unit, range, ...)."""


class UnitError(InputError):
    """A quantity has the wrong unit, or a conversion is not defined for it (e.g. SUV of a CT)."""


class FormatError(PetspectError, ValueError):
    """A file cannot be read: unknown or unsupported format, or corrupt content."""


class MissingTagError(FormatError):
    """A DICOM attribute (or Interfile key) needed for the operation is absent."""


class UnsupportedTransferSyntaxError(FormatError):
    """The DICOM pixel data are compressed in a transfer syntax that cannot be decoded here."""


class GeometryError(FormatError):
    """Inconsistent geometry: uneven slice spacing, non-parallel slices, mismatched grids."""


class MixedSeriesError(FormatError):
    """A folder holds several DICOM series where one was expected."""


class OutputExistsError(PetspectError, FileExistsError):
    """An output path exists (or is one of the inputs) and overwriting was not asked for."""


class ConfigError(InputError):
    """A configuration file or preset is invalid."""


class DataNotFoundError(PetspectError, FileNotFoundError):
    """A file or folder that should exist does not."""


class MissingDependencyError(PetspectError, ImportError):
    """An optional dependency is not installed; the message names the extra that provides it."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None) -> None:
        super().__init__(message, path=path)
        self.path = None if path is None else os.fspath(path)  # ImportError.__init__ resets ``path``
