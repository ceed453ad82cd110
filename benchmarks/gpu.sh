#!/usr/bin/env bash
# The GPU benchmarks, prepared for a machine lent through the device tool: it has torch, transformers,
# accelerate and scikit-learn, but not diffusers or open_clip_torch, and no package registry.
#
#   bash benchmarks/gpu.sh fetch   # here: the missing wheels into .gpu/wheels, the small test-bed artifacts
#                                  # it needs (data, clip, tokenizer) into .gpu/cache (both ignored by git)
#   bash benchmarks/gpu.sh run     # there, with carry [".gpu"]; logs under $OUT (default gpu-out/)
#
# `run` measures issue 12's real-size benchmark: a pipeline with Stable Diffusion 1.5's architecture and
# random weights at 512 px, fp16, the audit (cold, then warm) against the raw diffusers loop generating the
# same 200 images in the same batches (benchmarks/audit_overhead.py). QUERIES, STEPS, RESOLUTION override;
# DEVICE=cpu with a small size rehearses the run on a machine without a GPU.
# It writes the card's name beside the numbers: record both.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
fetch)
  mkdir -p .gpu/wheels .gpu/cache
  version() { python -c "import importlib.metadata as m; print(m.version('$1'))"; }
  for package in diffusers open_clip_torch ftfy wcwidth; do
    python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/wheels \
      "$package==$(version "$package")"
  done
  python -m mia_checks.testbed data clip tokenizer --cache-dir .gpu/cache
  # Only those three travel: the device tool carries 64 MiB at most.
  find .gpu/cache/testbed -mindepth 2 -maxdepth 2 ! -name data ! -name clip ! -name tokenizer ! -name '.*' \
    -exec rm -rf {} +
  du -sh .gpu/wheels .gpu/cache
  ;;
run)
  out=${OUT:-gpu-out}
  mkdir -p "$out"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .gpu/wheels/*.whl
  export PYTHONPATH=/tmp/site:$PWD MIA_CHECKS_CACHE=$PWD/.gpu/cache PYTHONUNBUFFERED=1
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi"; } \
    | tee "$out/gpu.txt"
  python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers',
    diffusers.__version__, 'transformers', transformers.__version__)" | tee -a "$out/gpu.txt"
  python3 benchmarks/audit_overhead.py --architecture sd15 --resolution "${RESOLUTION:-512}" \
    --queries "${QUERIES:-200}" --steps "${STEPS:-25}" --device "${DEVICE:-cuda}" --model-dir /tmp/sd15 2>&1 \
    | grep -v -e "Loading" -e "Writing model shards" | tee "$out/sd15.log"
  ;;
*)
  echo "usage: bash benchmarks/gpu.sh fetch|run" >&2
  exit 2
  ;;
esac
