"""Generation: each image generated once, into a content-addressed cache shared by every attack, run and
process (`cache.py`); how many processes split the work (`shards.py`); and how progress is shown
(`progress.py`)."""

from __future__ import annotations

from .cache import GenerationCache, GenerationStats, query_seed
from .progress import Progress
from .shards import Shard, shard_from_environment

__all__ = ["GenerationCache", "GenerationStats", "Progress", "Shard", "query_seed", "shard_from_environment"]
