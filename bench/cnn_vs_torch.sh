#!/usr/bin/env bash
# The fast trainer's CNN against the same network in PyTorch on the CPU (issue 26), in one go:
# ROUNDS rounds (default 5), each running, in turn,
#   deno task fast --model cnn --optimizer momentum --lr 0.05 --batch-size 32 --train-limit 6000 --epochs 1
#   /usr/bin/python3 bench/torch_cnn.py --limit 6000 --batch-size 32 --lr 0.05 --momentum 0.9 --threads 2
# then prints each one's epoch times (ms, the epoch's own clock, set-up and test pass excluded),
# their medians and the ratio deno / torch, with the date, commit and load average.
# Not a test: it asserts nothing. Usage: bash bench/cnn_vs_torch.sh [ROUNDS] [--data DIR]
# (--data goes to both trainers).
# With BEFORE=DIR (another checkout, e.g. a worktree of an earlier commit), each round also runs
# the same deno command in DIR, before the other two, and its median and after/before are printed.
# (Debian's python3-torch: apt-get install -y python3-torch.)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=5
if [[ ${1:-} =~ ^[0-9]+$ ]]; then
  rounds=$1
  shift
fi
python=${PYTHON:-/usr/bin/python3}
flags=(--model cnn --optimizer momentum --lr 0.05 --batch-size 32 --train-limit 6000 --epochs 1 "$@")
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)  commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- fast shared || echo ' (+ uncommitted changes)')"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)  cores: $(nproc)"
echo "deno: deno task fast ${flags[*]}"
echo "torch: $python bench/torch_cnn.py --limit 6000 --batch-size 32 --lr 0.05 --momentum 0.9 --threads 2 $*"
epoch() { # the epoch-1 "loss ms" of deno task fast, in the current directory ("" if it failed)
  deno task fast "${flags[@]}" 2>&1 | sed -n 's/^\[epoch 1 done\] avg loss = \([0-9.]*\) (\([0-9.]*\) ms).*/\1 \2/p' || true
}
[ -z "${BEFORE:-}" ] || echo "before: $BEFORE at $(git -C "$BEFORE" rev-parse --short HEAD)"
deno_ms=() torch_ms=() before_ms=()
for r in $(seq 1 "$rounds"); do
  if [ -n "${BEFORE:-}" ]; then
    b=$(cd "$BEFORE" && epoch)
    [ -n "$b" ] || { echo "error: no epoch line from deno task fast in $BEFORE" >&2; exit 1; }
    echo "round $r: before loss ${b% *} ${b#* } ms"
    before_ms+=("${b#* }")
  fi
  d=$(epoch)
  [ -n "$d" ] || { echo "error: no epoch line from deno task fast" >&2; exit 1; }
  t=$("$python" bench/torch_cnn.py --limit 6000 --batch-size 32 --lr 0.05 --momentum 0.9 --threads 2 "$@" |
    sed -n 's/^\[epoch 1\] loss = \([0-9.]*\)  (\([0-9.]*\) ms).*/\1 \2/p' || true)
  [ -n "$t" ] || { echo "error: no epoch line from bench/torch_cnn.py" >&2; exit 1; }
  echo "round $r: deno loss ${d% *} ${d#* } ms | torch loss ${t% *} ${t#* } ms | load $(cut -d' ' -f1 /proc/loadavg)"
  deno_ms+=("${d#* }") torch_ms+=("${t#* }")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
dm=$(median "${deno_ms[@]}") tm=$(median "${torch_ms[@]}")
echo "median epoch: deno $dm ms, torch $tm ms, ratio deno/torch $(awk -v a="$dm" -v b="$tm" 'BEGIN {printf "%.2f", a / b}')"
if [ -n "${BEFORE:-}" ]; then
  bm=$(median "${before_ms[@]}")
  echo "median epoch before: $bm ms (ratio to torch $(awk -v a="$bm" -v b="$tm" 'BEGIN {printf "%.2f", a / b}')), after/before $(awk -v a="$dm" -v b="$bm" 'BEGIN {printf "%.3f", a / b}')"
fi
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
