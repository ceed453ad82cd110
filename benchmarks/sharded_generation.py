"""Sharded generation on CPU: the same images by 1 process with 1 thread against 2 processes with 1 thread
each, filling fresh generation caches (run by hand).

    python benchmarks/sharded_generation.py [--target sd-null] [--images 256] [--steps 25] [--batch-size 8]
                                            [--repeats 1]

Each process is a fresh interpreter, as `accelerate launch` or a pytest-xdist worker would be: it loads the
test-bed pipeline with torch.set_num_threads(1) and calls GenerationCache.ensure for its shard (rank r of w),
then helps with what is left. Prints, per repeat and as medians:
- generation: from the first process starting to generate to the last one finishing (loading excluded);
- end to end: from launching the processes to the last one exiting (interpreter start and loading included);
and the speed-up of 2 processes over 1 (target ≥ 1.7 on the generation phase), and checks that both caches
hold the very same files, byte for byte. A control comes first: the same comparison for a trivially parallel
pure-Python loop (no torch, no cache, no lock), the most any way of splitting work can gain on this machine
as loaded now (on shared cores it can be far below 2); then a torch control: the bare pipeline called on a
static split of the same batches by 1 and 2 processes, without the cache, locks or PNG files (what the
hardware allows this torch work; what the sharding costs is the gap between it and the cache's speed-up).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = """
import json, sys, time
import torch
torch.set_num_threads(1)
from mia_checks.generation import GenerationCache, Shard
from mia_checks.targets import GenerationSettings, load_target

target_path, cache, rank, world, images, steps, batch = sys.argv[1:8]
target = load_target(target_path, GenerationSettings(steps=int(steps), guidance=1.0, device="cpu"))
words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
styles = ["light", "medium", "heavy"]
captions = [f"a handwritten {words[i % 10]}, {styles[i // 10 % 3]} ink, upright, wide, written {i}"
            for i in range(int(images))]
start = time.time()
n = GenerationCache(cache, target, {"steps": int(steps)}).ensure(captions, 0, 1, int(batch), progress=False,
                                                                  shard=Shard(int(rank), int(world)))
print(json.dumps({"start": start, "end": time.time(), "generated": n}))
"""


RAW = """
import json, sys, time
import torch
torch.set_num_threads(1)
from mia_checks.targets import GenerationSettings, load_target

target_path, rank, world, images, steps, batch = sys.argv[1:7]
target = load_target(target_path, GenerationSettings(steps=int(steps), guidance=1.0, device="cpu"))
captions = [f"a handwritten digit {i}" for i in range(int(images))]
batches = [list(range(i, min(i + int(batch), len(captions)))) for i in range(0, len(captions), int(batch))]
start = time.time()
for b in batches[int(rank)::int(world)]:
    target.generate([captions[i] for i in b], b)
print(json.dumps({"start": start, "end": time.time(), "generated": 0}))
"""


CONTROL = """
import json, sys, time
start = time.time()
total = 0
for i in range(int(sys.argv[1])):
    total += i
print(json.dumps({"start": start, "end": time.time()}))
"""


def control(world: int, loops: int) -> float:
    """Wall time of `world` processes each running the same pure-Python loop (work × world)."""
    procs = [subprocess.Popen([sys.executable, "-c", CONTROL, str(loops)], stdout=subprocess.PIPE, text=True)
             for _ in range(world)]
    outs = [json.loads(p.communicate()[0]) for p in procs]
    return max(o["end"] for o in outs) - min(o["start"] for o in outs)


def workers(script: str, argv: list[list[str]]) -> list[dict]:
    """One fresh interpreter per rank running `script` with 1 thread; each prints a JSON line last."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", script, *a], env=env, stdout=subprocess.PIPE, text=True)
             for a in argv]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed: {outs}")
    return outs


def fill(target: Path, cache: Path, world: int, args) -> dict:
    launched = time.time()
    outs = workers(WORKER, [[str(target), str(cache), str(rank), str(world), str(args.images), str(args.steps),
                             str(args.batch_size)] for rank in range(world)])
    exited = time.time()
    if sum(o["generated"] for o in outs) != args.images:
        raise SystemExit(f"images were generated twice or not at all: {outs}")
    return {"generation": max(o["end"] for o in outs) - min(o["start"] for o in outs),
            "end_to_end": exited - launched, "per_process": [o["generated"] for o in outs]}


def raw(target: Path, world: int, args) -> float:
    """Generation phase of `world` processes calling the pipeline on a static split of the same batches,
    with no cache, file lock or PNG: the ceiling of any sharding of this torch work on this machine."""
    outs = workers(RAW, [[str(target), str(rank), str(world), str(args.images), str(args.steps),
                          str(args.batch_size)] for rank in range(world)])
    return max(o["end"] for o in outs) - min(o["start"] for o in outs)


def files(cache: Path) -> dict[str, bytes]:
    return {str(p.relative_to(cache)): p.read_bytes() for p in sorted(cache.rglob("*.png"))}


def main() -> None:
    from mia_checks.testbed import ensure_built

    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="sd-null")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    target = ensure_built([args.target]) / args.target
    print(f"{args.images} images, {args.steps} steps, batches of {args.batch_size}, {args.target}, CPU, "
          f"1 thread per process; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    ceilings = []
    for _ in range(3):
        alone, pair = control(1, 30_000_000), control(2, 30_000_000)
        ceilings.append(2 * alone / pair)
    print(f"control: 2 processes do {statistics.median(ceilings):.2f}x the work of 1 in the same time on a trivially "
          f"parallel pure-Python loop (runs: {', '.join(f'{c:.2f}' for c in ceilings)}): the ceiling here")
    raws = []
    for _ in range(args.repeats):
        alone, pair = raw(target, 1, args), raw(target, 2, args)
        raws.append(alone / pair)
    print(f"torch control: the bare pipeline on a static split (no cache, lock or PNG), 2 processes "
          f"{statistics.median(raws):.2f}x faster than 1 (runs: {', '.join(f'{r:.2f}' for r in raws)}): the "
          f"ceiling for this torch work here")
    one, two = [], []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            single = fill(target, Path(tmp) / "one", 1, args)
            double = fill(target, Path(tmp) / "two", 2, args)
            same = files(Path(tmp) / "one") == files(Path(tmp) / "two")
            if not same or len(files(Path(tmp) / "one")) != args.images:
                raise SystemExit("the two caches differ")
        one.append(single)
        two.append(double)
        print(f"repeat {repeat + 1}: 1 process {single['generation']:.1f} s generating ({single['end_to_end']:.1f} s "
              f"end to end); 2 processes {double['generation']:.1f} s ({double['end_to_end']:.1f} s), images per "
              f"process {double['per_process']}; caches identical: {same}")
    for phase in ("generation", "end_to_end"):
        a, b = statistics.median(r[phase] for r in one), statistics.median(r[phase] for r in two)
        print(f"{phase.replace('_', ' ')}: 1 process {a:.1f} s, 2 processes {b:.1f} s, speed-up {a / b:.2f}x"
              + (" (target >= 1.7)" if phase == "generation" else ""))
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
