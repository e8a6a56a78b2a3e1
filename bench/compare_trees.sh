#!/usr/bin/env bash
# Epoch times of two checkouts side by side, in one run, alternating, so that a
# refactor can show it did not slow the trainer (a machine's load drifts; runs
# of the two trees interleave so both see the same drift).
#
#   bash bench/compare_trees.sh BEFORE_DIR AFTER_DIR [ROUNDS]
#
# Each round runs, in each tree, the MLP (--epochs 4 on the first 30,000
# images) and the CNN (--epochs 2 on the first 4,000), --no-tune, and keeps
# every epoch's ms but the first (which pays the compile on a cold cache).
# Prints the median epoch time per tree and model, and the ratio after/before.
set -euo pipefail
before=${1:?usage: bash bench/compare_trees.sh BEFORE_DIR AFTER_DIR [ROUNDS]}
after=${2:?usage: bash bench/compare_trees.sh BEFORE_DIR AFTER_DIR [ROUNDS]}
rounds=${3:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mlp=(--epochs 4 --train-limit 30000 --test-limit 1000)
cnn=(--model cnn --epochs 2 --train-limit 4000 --test-limit 1000)
for r in $(seq "$rounds"); do
  for tree in before after; do
    dir=$before
    [ "$tree" = after ] && dir=$after
    for model in mlp cnn; do
      declare -n flags=$model
      (cd "$dir" && deno run --allow-read --allow-write --allow-env fast/main.ts --no-tune \
        "${flags[@]}" --json 2>/dev/null) |
        jq '.epochs[1:][].ms' >>"$tmp/$tree-$model"
    done
  done
  echo "round $r of $rounds done ($(uptime | sed 's/.*load average: //'))" >&2
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for model in mlp cnn; do
  b=$(median "$tmp/before-$model")
  a=$(median "$tmp/after-$model")
  printf '%s: before %.1f ms/epoch, after %.1f ms/epoch (median of %d and %d epochs), after/before %.3f\n' \
    "$model" "$b" "$a" "$(wc -l <"$tmp/before-$model")" "$(wc -l <"$tmp/after-$model")" \
    "$(echo "$a / $b" | bc -l)"
done
