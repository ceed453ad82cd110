"""Who generates what when many processes fill one generation cache: this process's shard, from a launcher
(`accelerate launch`, torchrun, MPI) or from pytest-xdist, and the device a launcher gives it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Shard:
    """This process's share of the work: rank `rank` of `world` processes takes the canonical batches
    rank, rank + world, … first. `name` says who it is in progress output (gw0, rank 1)."""

    rank: int = 0
    world: int = 1
    name: str = ""
    source: str = ""  # "accelerate" (torch.distributed launchers), "xdist", or "" (one process)

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world:
            raise ValueError(f"shard rank {self.rank} is not in [0, {self.world})")

    @property
    def label(self) -> str:
        """'gw1: shard 2 of 2' ('' for a lone process)."""
        if self.world == 1:
            return self.name
        return f"{self.name + ': ' if self.name else ''}shard {self.rank + 1} of {self.world}"


# A launcher's process count and rank: torchrun / `accelerate launch` (multi-GPU), MPI (accelerate's multi-CPU).
LAUNCHER_VARIABLES = (("WORLD_SIZE", "RANK"), ("PMI_SIZE", "PMI_RANK"), ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
                      ("MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"))


@lru_cache(maxsize=1)
def shard_from_environment() -> Shard:
    """The shard of this process: under `accelerate launch` (or any torch.distributed or MPI launcher: a
    process count > 1), accelerate's process index and count (the launcher's own variables where accelerate
    sees no distributed setup, e.g. a multi-GPU launch on a machine without GPUs); under pytest-xdist, the
    worker's number and the worker count; else the whole job. accelerate is imported only under a launcher."""
    env = os.environ
    launched = next(((_int(env.get(rank)), _int(env.get(size))) for size, rank in LAUNCHER_VARIABLES
                     if _int(env.get(size)) > 1), None)
    if launched is not None:
        rank, world = launched
        try:
            from accelerate import PartialState

            state = PartialState()
            if state.num_processes > 1:
                rank, world = state.process_index, state.num_processes
        except ImportError:
            pass
        if 0 <= rank < world:
            return Shard(rank, world, f"rank {rank}", "accelerate")
    worker, count = env.get("PYTEST_XDIST_WORKER", ""), _int(env.get("PYTEST_XDIST_WORKER_COUNT"))
    if worker.startswith("gw") and worker[2:].isdigit() and 0 <= int(worker[2:]) < count and count > 1:
        return Shard(int(worker[2:]), count, worker, "xdist")
    return Shard(name=worker)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def launcher_device() -> str:
    """This process's device under a torch.distributed launcher: accelerate's choice (cuda:LOCAL_RANK, …)."""
    try:
        from accelerate import PartialState

        return str(PartialState().device)
    except ImportError:
        import torch

        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu"


def leave_process_group() -> None:
    """accelerate's PartialState may have joined a torch.distributed process group: leave it cleanly."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 — best effort at exit; the cache is complete either way
        pass
