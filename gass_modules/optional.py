"""Optional dependencies and version gates: a clear message instead of an ImportError deep inside.

The library's run-time needs are ``install_requires`` (setup.py); what only one feature needs is
an extra (``pip install 'gass_modules[plots]'``: matplotlib for spectrogram figures;
``[musdb]``: museval for MUSDB18 cSDR). :func:`import_optional` imports such a module when the
feature is used and, when it is missing, says which extra brings it. :func:`require_version`
gates a feature on a newer release of a dependency than the declared range's floor.

Authors
 * gass developers 2026
"""

from __future__ import annotations

import importlib
import importlib.metadata
from types import ModuleType

from packaging.version import Version

__all__ = ["import_optional", "require_version"]


def import_optional(module: str, extra: str, feature: str) -> ModuleType:
    """Imports ``module``, or raises an ImportError that names the extra that installs it.

    Arguments
    ---------
    module : str
        The module to import (``"matplotlib.figure"``).
    extra : str
        The gass_modules extra that brings it (``"plots"``).
    feature : str
        What needs it, for the message (``"--plot"``).

    Returns
    -------
    module
        The imported module.

    Example
    -------
    >>> import_optional("math", "none", "a doctest").sqrt(4.0)
    2.0
    >>> import_optional("no_such_module_gass", "plots", "spectrogram figures")
    Traceback (most recent call last):
    ...
    ImportError: spectrogram figures: no_such_module_gass is not installed; pip install '...[plots]'
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        # only the module asked for (or its package) missing is the user's install; a missing
        # dependency *of* an installed module is a broken install and keeps its own error
        if err.name is None or not module.startswith(err.name):
            raise
        raise ImportError(f"{feature}: {module} is not installed; pip install "
                          f"'gass_modules[{extra}]'") from None


def require_version(distribution: str, minimum: str, feature: str) -> None:
    """Raises a RuntimeError when the installed ``distribution`` is older than ``minimum``.

    For a feature that needs a newer release than the floor of gass_modules' declared range
    (e.g. a SpeechBrain 1.1 API while ``speechbrain>=1.0.3`` is declared).

    Arguments
    ---------
    distribution : str
        The distribution's name (``"speechbrain"``).
    minimum : str
        The oldest version that has the feature (``"1.1.0"``).
    feature : str
        What needs it, for the message.

    Example
    -------
    >>> require_version("torch", "1.0", "a doctest")
    >>> require_version("torch", "99.0", "time travel")
    Traceback (most recent call last):
    ...
    RuntimeError: time travel needs torch>=99.0, but torch ... is installed: pip install ...
    """
    installed = importlib.metadata.version(distribution)
    if Version(installed) < Version(minimum):
        raise RuntimeError(f"{feature} needs {distribution}>={minimum}, but {distribution} "
                           f"{installed} is installed: pip install '{distribution}>={minimum}'")
