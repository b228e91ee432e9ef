"""Evaluation of separators: the IRM oracle, per-source scores, reports and figures.

* :mod:`gass_modules.evaluation.oracle`: :class:`~gass_modules.evaluation.oracle.IRMOracle`;
* :mod:`gass_modules.evaluation.scoring`: ``power_db`` and ``score_separation``;
* :mod:`gass_modules.evaluation.report`: ``SeparationReport`` (CSV and markdown summary);
* :mod:`gass_modules.evaluation.plots`: ``plot_separation`` (spectrogram figures).
"""
