#!/usr/bin/env bash
# Records what a set of runs prints, minus the times, so a refactor can show it
# changed nothing: run it in the tree before and in the tree after, then diff.
#
#   bash bench/parity.sh OUT_DIR [REGEX]  # from a tree's root; writes OUT_DIR/*.json, *.sha256
#   diff -r BEFORE_DIR AFTER_DIR          # identical: same losses, accuracies, confusions, files
#
# REGEX (grep -E) keeps only the runs whose names match (e.g. '^cnn', '^mlp|^slow').
#
# Each run's --json summary is written with every "ms" field (and the adapter,
# and the profile's times) removed; checkpoints and plots are recorded by their SHA-256, the predict run
# by its JSON. The runs: the default MLP (the original's run, full MNIST);
# Adam with --shuffle; momentum; --init kaiming; the CNN; a --save then a
# --resume of the MLP and of the CNN; the slow trainer (small limits).
set -euo pipefail
out=${1:?usage: bash bench/parity.sh OUT_DIR [REGEX]}
only=${2:-.}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fast=(deno run --allow-read --allow-write --allow-env fast/main.ts --no-tune)
slow=(deno run --allow-read --allow-write --allow-env slow/main.ts)

# The profile keeps what each kernel is, how often it ran and its operations, not its times.
strip() {
  jq -S 'del(.. | .ms?) | del(.adapter) | del(.. | .file?) |
    if .profile then .profile |= {mode, kernels: ([.kernels[] | {kernel, calls, flops}] |
      sort_by(.kernel))} else . end'
}

run() { # name, command...
  local name=$1
  shift
  echo "$name" | grep -Eq "$only" || return 0
  echo "== $name: $*" >&2
  local t0=$SECONDS
  "$@" --json 2>"$tmp/$name.err" | strip >"$out/$name.json" ||
    { echo "$name failed:" >&2; tail -5 "$tmp/$name.err" >&2; exit 1; }
  echo "   $((SECONDS - t0)) s" >&2
}

run mlp-default "${fast[@]}"
run mlp-adam-shuffle "${fast[@]}" --optimizer adam --lr 0.001 --shuffle --epochs 3
run mlp-momentum "${fast[@]}" --optimizer momentum --epochs 3
run mlp-kaiming "${fast[@]}" --init kaiming --epochs 2 --batch-size 128 --train-limit 20000 \
  --plot "$tmp/kaiming.svg"
run mlp-profile "${fast[@]}" --epochs 1 --train-limit 5000 --test-limit 1000 --profile
run cnn "${fast[@]}" --model cnn --epochs 2 --train-limit 6000 --test-limit 2000
run cnn-adam-shuffle "${fast[@]}" --model cnn --optimizer adam --lr 0.001 --shuffle --epochs 2 \
  --train-limit 3000 --test-limit 1000 --plot "$tmp/cnn.svg"
run mlp-save "${fast[@]}" --optimizer momentum --epochs 2 --train-limit 8000 --test-limit 2000 \
  --save "$tmp/mlp.safetensors"
sha() { [ -e "$1" ] && sha256sum <"$1" >"$out/$2.sha256" || true; }
predict() { # model file, name
  [ -e "$1" ] || return 0
  deno run --allow-read fast/predict.ts --model "$1" --limit 50 --json mnist:test 2>/dev/null |
    jq -S 'del(.. | .file?)' >"$out/$2.json"
}
sha "$tmp/mlp.safetensors" mlp-save
run mlp-resume "${fast[@]}" --optimizer momentum --epochs 4 --train-limit 8000 --test-limit 2000 \
  --save "$tmp/mlp.safetensors" --resume
sha "$tmp/mlp.safetensors" mlp-resume
predict "$tmp/mlp.safetensors" mlp-predict
run cnn-save "${fast[@]}" --model cnn --optimizer adam --lr 0.001 --epochs 1 --train-limit 3000 \
  --test-limit 1000 --save "$tmp/cnn.safetensors"
sha "$tmp/cnn.safetensors" cnn-save
run cnn-resume "${fast[@]}" --model cnn --optimizer adam --lr 0.001 --epochs 2 --train-limit 3000 \
  --test-limit 1000 --save "$tmp/cnn.safetensors" --resume
sha "$tmp/cnn.safetensors" cnn-resume
predict "$tmp/cnn.safetensors" cnn-predict
sha "$tmp/kaiming.svg" mlp-kaiming-plot
sha "$tmp/cnn.svg" cnn-adam-shuffle-plot
run slow "${slow[@]}" --epochs 2 --train-limit 1000 --test-limit 500
echo "written: $out" >&2
