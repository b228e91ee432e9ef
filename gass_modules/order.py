"""Output order of a separator: the one vocabulary, ``"aligned"`` or ``"fixed"``.

Every place that asks how a model's outputs are ordered uses these two words and this module's
checks: chunked separation (:mod:`gass_modules.inference.chunking`), the model folder's ``order:``
key,
``GASSSeparator.order``, the recipes' ``order:`` key, and evaluation (estimates matched to
references by :func:`gass_modules.metrics.align_to_references`, ``BenchmarkScorer(order=...)``).

* ``"aligned"``: the outputs of a model trained with permutation-invariant training (PIT) come
  in an arbitrary order. Chunks of a long input are permuted to match each other before
  overlap-add, and evaluation matches estimates to references by the best permutation.
* ``"fixed"``: labelled stems (e.g. DnR or MUSDB18 trained without permutation): output ``k`` is
  stem ``k`` in every chunk, and estimate ``k`` is scored against reference ``k``.

Before gass 2.0.0 the same choice had four other names (:data:`FORMER_NAMES`); they were removed
in 2.0.0 (CHANGELOG.md). :func:`check_no_former_names` turns one met in a recipe's settings into
an error that says what to write instead. Model folders on disk cannot be rewritten, so their
``fixed_order: true|false`` still loads (``gass_modules.model_folder.folder.folder_order``), mapped
by
:func:`order_from_former`.

This module is at the bottom of the import graph: it imports nothing from gass_modules.

Authors
 * gass developers 2026
"""

from __future__ import annotations

from collections.abc import Mapping

ORDERS = ("aligned", "fixed")
# The names of the output order before gass 2.0.0 -> how their values map onto ORDERS.
FORMER_NAMES: dict[str, dict[object, str]] = {
    "fixed_order": {True: "fixed", False: "aligned"},  # model folders, save_model_folder
    "align": {True: "aligned", False: "fixed"},  # separate_batch / separate_file / ..._to_files
    "eval_alignment": {"oracle": "aligned", "fixed": "fixed"},  # recipes
    "alignment": {"oracle": "aligned", "fixed": "fixed"},  # BenchmarkScorer, metrics
}


def check_order(order: object) -> str:
    """Returns ``order`` when it is one of :data:`ORDERS`, else raises a ``ValueError``.

    Arguments
    ---------
    order : object
        The value to check.

    Returns
    -------
    str
        ``order``.

    Example
    -------
    >>> check_order("fixed")
    'fixed'
    >>> check_order("oracle")
    Traceback (most recent call last):
    ...
    ValueError: order must be one of ('aligned', 'fixed') ...
    """
    if order not in ORDERS:
        hint = ""
        if isinstance(order, str) and order in FORMER_NAMES["alignment"]:
            hint = (f"; {order!r} is the word of gass before 2.0.0, write "
                    f"{FORMER_NAMES['alignment'][order]!r}")
        raise ValueError(f"order must be one of {ORDERS} (aligned: outputs permuted to match "
                         f"from chunk to chunk, for PIT-trained models; fixed: output k is stem "
                         f"k), got {order!r}{hint}")
    return order


def resolve_order(order: str | None = None, default: str = "aligned") -> str:
    """``order`` when given, else ``default``; either checked by :func:`check_order`.

    Arguments
    ---------
    order : str, optional
        ``"aligned"`` or ``"fixed"``.
    default : str
        The order when ``order`` is ``None`` (e.g. the model folder's).

    Returns
    -------
    str
        ``"aligned"`` or ``"fixed"``.

    Example
    -------
    >>> resolve_order(), resolve_order("fixed"), resolve_order(None, default="fixed")
    ('aligned', 'fixed', 'fixed')
    """
    return check_order(default if order is None else order)


def order_from_former(name: str, value: object) -> str:
    """The order that a name of it from before gass 2.0.0 (:data:`FORMER_NAMES`) meant.

    Arguments
    ---------
    name : str
        ``fixed_order``, ``align``, ``eval_alignment`` or ``alignment``.
    value : object
        Its value (true/false, or ``oracle``/``fixed``).

    Returns
    -------
    str
        ``"aligned"`` or ``"fixed"``.

    Example
    -------
    >>> order_from_former("fixed_order", True), order_from_former("eval_alignment", "oracle")
    ('fixed', 'aligned')
    >>> order_from_former("fixed_order", "yes")
    Traceback (most recent call last):
    ...
    ValueError: fixed_order must be one of [True, False], got 'yes'; write order: aligned ...
    """
    if name not in FORMER_NAMES:
        raise KeyError(f"{name!r} is not a former name of the order ({sorted(FORMER_NAMES)})")
    table = FORMER_NAMES[name]
    if isinstance(value, bool) != isinstance(next(iter(table)), bool) or value not in table:
        raise ValueError(f"{name} must be one of {list(table)}, got {value!r}; write "
                         f"order: aligned or order: fixed instead")
    return table[value]


def check_no_former_names(settings: Mapping, where: str) -> None:
    """Raises a ``ValueError`` naming ``order:`` when ``settings`` use a removed name of it.

    The names of :data:`FORMER_NAMES` were removed in gass 2.0.0; a recipe (or any settings)
    that still has one gets an error saying what to write instead, not a silent default.

    Arguments
    ---------
    settings : Mapping
        A recipe's hyperparameters (or keyword arguments).
    where : str
        What the settings are, for the message (``"the recipe"``).

    Example
    -------
    >>> check_no_former_names({"order": "fixed"}, "the recipe")  # nothing to say
    >>> check_no_former_names({"eval_alignment": "fixed"}, "the recipe")
    Traceback (most recent call last):
    ...
    ValueError: the recipe says eval_alignment: fixed, a name removed in gass 2.0.0: write ...
    """
    for name in FORMER_NAMES:
        if name in settings and settings[name] is not None:
            value = settings[name]
            try:
                instead = f"order: {order_from_former(name, value)}"
            except ValueError:
                instead = "order: aligned (PIT-trained outputs) or order: fixed (labelled stems)"
            shown = str(value).lower() if isinstance(value, bool) else value
            raise ValueError(f"{where} says {name}: {shown}, a name removed in gass 2.0.0: "
                             f"write {instead} instead (CHANGELOG.md)")


__all__ = ["FORMER_NAMES", "ORDERS", "check_no_former_names", "check_order", "order_from_former",
           "resolve_order"]
