"""Evaluation: scorers, the benchmarks' metrics, the IRM oracle and reports.

Example
-------
>>> import gass_modules.evaluation as pkg
>>> all(hasattr(pkg, name) for name in pkg.__all__)
True
"""

from gass_modules.evaluation.benchmarks import BenchmarkMetrics, BenchmarkScorer, register_benchmark
from gass_modules.evaluation.brain_evaluation import Evaluator
from gass_modules.evaluation.oracle import IRMOracle
from gass_modules.evaluation.report import SeparationReport
from gass_modules.evaluation.scorer import Scorer
from gass_modules.evaluation.scoring import score_separation

__all__ = [
    "Scorer",
    "score_separation",
    "BenchmarkScorer",
    "BenchmarkMetrics",
    "register_benchmark",
    "IRMOracle",
    "Evaluator",
    "SeparationReport",
]
