#!/usr/bin/env bash
# Issue #18's device run, after gpu-fast is merged: one call on an NVIDIA H100/H200 (Vulkan).
#
# Usage: bench/gpu_issue18.sh DATA_DIR [OUT_DIR]
#   DATA_DIR  the official MNIST files (train-images-idx3-ubyte, train-labels-idx1-ubyte,
#             t10k-…; plain or .gz), read by both `--data` and bench/torch_mlp.py
#   OUT_DIR   where every log goes (default: $OUT, else ./gpu-issue18)
#   DENO      the deno binary (default: deno); PYTHON (default: python3)
#   FAST_FLAGS  extra flags for `deno task fast` (default: --init original, main's flag for the
#             original program's weights, which bench/torch_mlp.py uses; empty: the default init)
#
# Steps, each with a time limit (565 s in all, under one device call's 600), none stopping the
# others:
#   1. the fast kernel and trainer tests on this GPU (the blocked family against the CPU
#      reference and bit for bit against tiled-16; overlapped epochs against the serial loop);
#   2. fast/measure.ts: GFLOP/s of every variant on every shape, tuner candidates included;
#   3. `deno task fast` on the full set, 10 epochs, batch 500: tuned (fresh cache), then cached,
#      then --no-tune (tiled-16 everywhere: the old kernels with the new epoch loop);
#   4. bench/torch_mlp.py, eager and CUDA graphs.
# The "before" figure (main before the merge) needs the old tree: run its `deno task fast` the
# same way from there.
set -u
DATA=${1:?usage: bench/gpu_issue18.sh DATA_DIR [OUT_DIR]}
OUT_DIR=${2:-${OUT:-gpu-issue18}}
DENO=${DENO:-deno}
PY=${PYTHON:-python3}
mkdir -p "$OUT_DIR"
# shellcheck disable=SC2206 # FAST_FLAGS is split into words on purpose
FAST=("$DENO" run --allow-read --allow-write --allow-env fast/main.ts --data "$DATA"
  --epochs 10 --batch-size 500 --lr 0.01 --json ${FAST_FLAGS---init original})

step() { # step NAME LIMIT_S COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name ($(date -u +%H:%M:%S) UTC): $*"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$OUT_DIR/$name.log" 2>&1
  echo "-- $name: exit $? after $((SECONDS - t0)) s"
  grep -E '^\[epoch|variants|adapter|accuracy|passed|failed|FAILED|epochs:|^\{' \
    "$OUT_DIR/$name.log" | cut -c1-400 | tail -n 40
}

date -u
nvidia-smi -L 2>/dev/null || true
"$DENO" --version | head -1
rm -f data/tune-cache.json
step tests 180 "$DENO" test --allow-read --allow-write --allow-net=127.0.0.1 --allow-env \
  --allow-run tests/fast_kernels_test.ts tests/fast_train_test.ts
step measure 90 "$DENO" run --allow-read --allow-env fast/measure.ts --data "$DATA" --epochs 3
rm -f data/tune-cache.json
step fast-tuned 75 "${FAST[@]}"
step fast-cached 50 "${FAST[@]}"
step fast-no-tune 50 "${FAST[@]}" --no-tune
step torch-eager 60 "$PY" bench/torch_mlp.py "$DATA" --mode eager
step torch-graphs 60 "$PY" bench/torch_mlp.py "$DATA" --mode graphs
date -u
