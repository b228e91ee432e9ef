"""Import paths kept when a module is split: names that moved stay importable from the old module.

When a module is split by concept (#16), code that imported a name from the old module keeps
working. Where the new module does not import the old one, the old module simply imports the
moved names back. Where it does (the moved code needs the old module's helpers), importing them
back at load time would be circular, so the old module resolves them on first use instead: it
sets its module-level ``__getattr__`` (PEP 562) to :func:`moved_names`, which imports the new
module when one of its names is asked for.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def moved_names(module: str, moved: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` that imports names moved to other modules when they are used.

    Arguments
    ---------
    module : str
        The old module's name (``__name__``), for the ``AttributeError`` of unknown names.
    moved : Mapping of str to str
        Name -> the module that now defines it.

    Returns
    -------
    callable
        ``__getattr__(name)``: the attribute ``name`` of ``moved[name]``.

    Example
    -------
    >>> __getattr__ = moved_names("old", {"sqrt": "math"})
    >>> __getattr__("sqrt")(16.0)
    4.0
    >>> __getattr__("cbrt")
    Traceback (most recent call last):
    ...
    AttributeError: module 'old' has no attribute 'cbrt'
    """
    table = dict(moved)

    def __getattr__(name: str) -> object:
        if name not in table:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        return getattr(importlib.import_module(table[name]), name)

    return __getattr__


__all__ = ["moved_names"]
