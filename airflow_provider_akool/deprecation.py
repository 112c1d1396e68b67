"""Old public names kept as deprecated aliases of new ones (each listed in CHANGELOG.md)."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def renamed(module: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """
    Return a module ``__getattr__`` that serves each old name of ``names`` as its new one, with a warning.

    :param module: the module's ``__name__``.
    :param names: ``{old name: new name}``; the new names are attributes of the module.
    """

    def __getattr__(name: str) -> Any:
        if name in names:
            warnings.warn(
                f"{module}.{name} is deprecated: use {module}.{names[name]}", DeprecationWarning, stacklevel=2
            )
            return getattr(sys.modules[module], names[name])
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


def warn_renamed(old: str, new: str) -> None:
    """Warn that ``old`` (a class or method) is deprecated for ``new``, from the caller's caller."""
    warnings.warn(f"{old} is deprecated: use {new}", DeprecationWarning, stacklevel=3)


__all__ = ["renamed", "warn_renamed"]
