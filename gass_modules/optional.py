"""Optional dependencies and version gates: a clear message instead of an ImportError deep inside.

The library's run-time needs are ``install_requires`` (setup.py); what only one feature needs is
an extra (``pip install 'gass_modules[plots]'``: matplotlib for spectrogram figures;
``[musdb]``: museval for MUSDB18 cSDR). :func:`import_optional` imports such a module when the
feature is used and, when it is missing, says which extra brings it. :func:`fetch_options`
and :func:`speechbrain_1_0_precision` bridge the SpeechBrain 1.0 / 1.1 differences the library
meets (fetch options; inference precision, a 1.1 feature gated with a message on 1.0).

Authors
 * gass developers 2026
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Mapping
from types import ModuleType

from speechbrain.utils import fetching

__all__ = ["FetchConfig", "import_optional", "fetch_options", "speechbrain_1_0_precision"]

# SpeechBrain 1.1's fetch options (None on 1.0.x, which has none): for annotations and callers
FetchConfig = getattr(fetching, "FetchConfig", None)


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


def fetch_options(fetch_config: object | None = None, **options: object) -> dict:
    """SpeechBrain's fetch options as keyword arguments, for either SpeechBrain line.

    SpeechBrain 1.1 groups them in ``FetchConfig`` (``fetch_config=``: network, overwrite,
    cache folder, ...). SpeechBrain 1.0.x has no ``FetchConfig`` and fetches with its defaults
    (a local folder is read in place, a hub id or URL is downloaded, an existing link is
    reused), so nothing is passed there; a caller that needs ``overwrite`` removes the old link
    itself (see :func:`gass_modules.training.transfer.transfer_from_checkpoint`).

    Arguments
    ---------
    fetch_config : speechbrain.utils.fetching.FetchConfig, optional
        The caller's options (SpeechBrain >= 1.1 only); default: ``FetchConfig(**options)``.
    **options
        ``FetchConfig`` fields for the default (e.g. ``allow_network=False``).

    Returns
    -------
    dict
        ``{"fetch_config": ...}`` on SpeechBrain >= 1.1, ``{}`` on 1.0.x.

    Example
    -------
    >>> import speechbrain
    >>> options = fetch_options(allow_network=False)
    >>> options == {} if speechbrain.__version__.startswith("1.0.") else (
    ...     options["fetch_config"].allow_network is False)
    True
    """
    if FetchConfig is None:  # SpeechBrain 1.0.x: fetch takes no configuration
        if fetch_config is not None:
            raise ValueError("fetch_config needs speechbrain>=1.1 (SpeechBrain 1.0 has no "
                             "FetchConfig); drop it or pip install 'speechbrain>=1.1'")
        return {}
    return {"fetch_config": fetch_config if fetch_config is not None else FetchConfig(**options)}


def speechbrain_1_0_precision(run_opts: Mapping | None) -> contextlib.AbstractContextManager:
    """The inference context of a ``Pretrained`` interface on SpeechBrain 1.0.x.

    SpeechBrain 1.1's ``Pretrained`` runs inference under ``inference_ctx`` (autocast to
    ``run_opts["precision"]``); 1.0.x has neither. There, float32 (no context) is what runs, and
    another precision is refused with a message rather than silently ignored.

    Arguments
    ---------
    run_opts : Mapping, optional
        The interface's SpeechBrain run options.

    Returns
    -------
    contextlib.nullcontext
        A do-nothing context (float32).

    Example
    -------
    >>> speechbrain_1_0_precision({"device": "cpu"})  # doctest: +ELLIPSIS
    <contextlib.nullcontext object at ...>
    >>> speechbrain_1_0_precision({"precision": "bf16"})
    Traceback (most recent call last):
    ...
    ValueError: run_opts precision='bf16' needs speechbrain>=1.1 (...); ...
    """
    precision = (run_opts or {}).get("precision", "fp32")
    if precision != "fp32":
        raise ValueError(f"run_opts precision={precision!r} needs speechbrain>=1.1 (its "
                         "Pretrained runs inference under autocast; 1.0 has no such option); "
                         "drop the option (float32) or pip install 'speechbrain>=1.1'")
    return contextlib.nullcontext()
