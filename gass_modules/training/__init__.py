"""Training: the Brain, its fast step, checkpoints, weight transfer, schedulers
and the library side of the recipes.

Example
-------
>>> import gass_modules.training as pkg
>>> all(hasattr(pkg, name) for name in pkg.__all__)
True
"""

from gass_modules.training.benchmark_runs import run_benchmark, run_benchmark_recipe
from gass_modules.training.brain import SeparationBrain
from gass_modules.training.checkpointing import AtomicCheckpointer
from gass_modules.training.compile_regions import compile_regions
from gass_modules.training.output_order import match_outputs_to_stems
from gass_modules.training.random_states import RandomStates, keep_random_states
from gass_modules.training.recipe import load_recipe
from gass_modules.training.schedulers import WallClockLinearDecay
from gass_modules.training.training_step import GraphedTrainStep, GuardedUpdate
from gass_modules.training.transfer import (
    TransferReport,
    prepare_finetuning,
    transfer_from_checkpoint,
)

__all__ = [
    "SeparationBrain",
    "AtomicCheckpointer",
    "compile_regions",
    "GuardedUpdate",
    "GraphedTrainStep",
    "TransferReport",
    "prepare_finetuning",
    "transfer_from_checkpoint",
    "match_outputs_to_stems",
    "RandomStates",
    "keep_random_states",
    "WallClockLinearDecay",
    "load_recipe",
    "run_benchmark",
    "run_benchmark_recipe",
]
