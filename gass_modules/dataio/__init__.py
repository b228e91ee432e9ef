"""Data-io for GASS: source manifests, the on-the-fly GASS mixer, shards and benchmark corpora.

Example
-------
>>> import gass_modules.dataio as pkg
>>> all(hasattr(pkg, name) for name in pkg.__all__)
True
"""

from gass_modules.dataio.benchmark_sets import load_benchmark_set
from gass_modules.dataio.manifest import Manifest, load_manifest
from gass_modules.dataio.mixer import GASSMixer, Mixture
from gass_modules.dataio.mixture_sets import MixtureStream, make_eval_set
from gass_modules.dataio.scan import check_clips, scan_audio
from gass_modules.dataio.scenario import Scenario
from gass_modules.dataio.shard_index import ShardIndex
from gass_modules.dataio.shard_source import ShardMixtureStream
from gass_modules.dataio.shards import verify_shards, write_shards

__all__ = [
    "GASSMixer",
    "Manifest",
    "Mixture",
    "MixtureStream",
    "Scenario",
    "ShardIndex",
    "ShardMixtureStream",
    "check_clips",
    "load_benchmark_set",
    "load_manifest",
    "make_eval_set",
    "scan_audio",
    "verify_shards",
    "write_shards",
]
