#!/usr/bin/env bash
# bench/mutants.sh: the mutation check. Each mutant below is one small change
# to the product (a kernel's sign, an optimiser's constant, the run loop's
# stop, the file-permission refusal, ...). It is applied alone, the test files
# that should catch it run (with a --filter, to keep each run small), and the
# file is restored from a copy before the next one.
#
#   caught   a test failed (at least one "N failed" with N ≥ 1)
#   MISSED   the tests passed with the mutant in place
#   INVALID  the mutant did not type-check or no test ran: it proves nothing
#
# A mutant whose text is not found exactly once in its file stops the script
# (it would mutate nothing). Exits 0 only when every mutant is caught.
#
# Run: bash bench/mutants.sh            (all; about 5-10 minutes on llvmpipe)
#      bash bench/mutants.sh NAME...    (only those)
#      MUTANTS_BASELINE=0 bash bench/mutants.sh   (skips the check, made by
#                         default, that each selection passes unmutated: without
#                         it a test that already failed would count as a catch)
#
# The tree is never left mutated: the file is copied before and restored after
# each mutant (checked byte for byte), and on any exit or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

TEST=(deno test --allow-read --allow-write --allow-net=127.0.0.1 --allow-env --allow-run --allow-ffi)
export NO_COLOR=1

work=$(mktemp -d)
mutated="" # the file mutated now, restored by restore()
restore() {
  if [[ -n $mutated ]]; then
    cp -p "$work/original" "$mutated"
    cmp -s "$work/original" "$mutated" || {
      echo "mutants: FAILED TO RESTORE $mutated (its original is $work/original)" >&2
      exit 3
    }
    mutated=""
  fi
}
trap 'restore; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

# name|file|text|replacement|test files (space-separated)|--filter (may be empty)
MUTANTS=(
  "kernel forward: blocked bias sign|shared/kernels/mlp/matmulBiasReluBlocked.wgsl|max(acc0 + b, zero)|max(acc0 - b, zero)|tests/fast_kernels_test.ts|/blocked-32x32 at the model's shapes/"
  "kernel backward: blocked ReLU mask lets a = 0 through|shared/kernels/mlp/inputGradReluMaskBlocked.wgsl|select(zero, acc0, act[at] > zero)|select(zero, acc0, act[at] >= zero)|tests/fast_kernels_test.ts|/blocked-32x32 at the model's shapes/"
  "kernel backward: blocked weight update sign|shared/kernels/mlp/weightGradBlocked.wgsl|w[at] = w[at] - step.lr * accs[i];|w[at] = w[at] + step.lr * accs[i];|tests/fast_kernels_test.ts|/blocked-32x32 at the model's shapes/"
  "slow kernel: reluBackward passes z = 0|shared/kernels/slow/reluBackward.wgsl|z[i] > 0.0)|z[i] >= 0.0)|tests/slow_kernels_test.ts|/reluBackward/"
  "IDX loader: dimensions read little-endian|shared/data/idx.ts|view.getUint32(4 + 4 * i, false)|view.getUint32(4 + 4 * i, true)|tests/idx_test.ts|"
  "optimiser sgd: half the step|shared/kernels/optim/sgdStep.wgsl|param[i] -= hp.lr * grad[i];|param[i] -= hp.lr * grad[i] * 0.5;|tests/optim_test.ts|/^sgd's kernel/"
  "optimiser momentum: velocity decays twice as fast|shared/kernels/optim/momentumStep.wgsl|let v = hp.momentum * velocity[i] + grad[i];|let v = hp.momentum * velocity[i] * 0.5 + grad[i];|tests/optim_test.ts|/^momentum's kernel/"
  "optimiser adam: v from g, not g²|shared/kernels/optim/adamStep.wgsl|(1.0 - hp.beta2) * g * g;|(1.0 - hp.beta2) * g;|tests/optim_test.ts|/^adam's kernel/"
  "optimiser adamw: the weight decay dropped|shared/kernels/optim/adamStep.wgsl|let decayed = theta - hp.lr * hp.weightDecay * theta;|let decayed = theta;|tests/optim_test.ts|/^adamw's kernel/"
  "optimiser adam: ε × 10|shared/kernels/optim/adamStep.wgsl|+ hp.eps);|+ hp.eps * 10.0);|tests/optim_test.ts|/adamStep kernel/"
  "run loop: epoch loss × (1 + 4e-4)|fast/epoch_loop.ts|loss: total / nTrain, ms };|loss: total / nTrain * (1 + 4e-4), ms };|tests/fast_train_test.ts|/trainFast epochs match/"
  "run loop: Ctrl-C waits for the epoch's end|fast/epoch_loop.ts|const stop = signal ? () => signal.aborted : undefined;|const stop = signal ? () => false : undefined;|tests/fast_features_test.ts|/fast Ctrl-C/"
  "run loop: a second Ctrl-C does not exit at once|fast/main.ts|if (ctrlC.signal.aborted) Deno.exit(130);|if (ctrlC.signal.aborted) return;|tests/faults_test.ts|/second Ctrl-C/"
  "run loop: --resume repeats the saved epoch|fast/run.ts|firstEpoch: (checkpoint?.epoch ?? 0) + 1,|firstEpoch: checkpoint ? checkpoint.epoch : 1,|tests/fast_features_test.ts|/--save\\/--resume: 3 epochs/"
  "checkpoint: optimizer_step written one ahead|fast/checkpoint.ts|optimizer_step: String(state.step),|optimizer_step: String(state.step + 1),|tests/fast_features_test.ts|/--save\\/--resume: 3 epochs/"
  "files: a missing --save directory not refused|fast/files.ts|if (!isDir) throw|if (isDir && !isDir) throw|tests/cnn_features_test.ts|/cnn --resume: another batch size/"
  "files: the write-permission refusal disabled|fast/files.ts|.state !== \"granted\") {|.state !== \"granted\" && false) {|tests/faults_test.ts|/without --allow-write/"
  "predict: a light background not inverted|shared/data/image.ts|const invert = border / count > 127;|const invert = border / count < 127;|tests/image_test.ts tests/predict_test.ts|"
  "texture copies: rows not a multiple of 64 floats let through (bug fixed 2026-12-06)|fast/mlp/variants/matmul.ts|textureWidths(shape).every((w) => w % TEXTURE_ROW_FLOATS === 0)|textureWidths(shape).every((w) => w % 4 === 0)|tests/fast_kernels_test.ts|/textures only where shapes and rows fit/"
  "web page: the engine gets half the learning rate|fast/web/session.ts|lr: settings.lr,|lr: settings.lr / 2,|tests/web_test.ts|/web page in Chromium/"
  "cnn texture: conv2's forward without its bias|shared/kernels/cnn/cnnConvTexture.wgsl|acc[i][j] = bias;|acc[i][j] = vec4f(0.0);|tests/cnn_textures_test.ts|/the MNIST CNN's two momentum epochs/"
  "cnn texture: pool1's backward without its ReLU mask|shared/kernels/cnn/cnnConvInputGradPoolTexture.wgsl|(at == i) & live)|(at == i))|tests/cnn_textures_test.ts|/the MNIST CNN's two momentum epochs/"
  "cnn texture: conv2's weight-gradient window not refetched where a slice starts mid-line|shared/kernels/cnn/cnnConvWeightGradTexture.wgsl|m == mStart) {|m == mEnd) {|tests/cnn_textures_test.ts|/slices from mid-line/"
  "cnn texture: conv1's weight gradient leaves its padding rows|shared/kernels/cnn/cnnConvWeightGradImage.wgsl|if (ky == KS1) {|if (ky == KS1 + 1u) {|tests/cnn_test.ts|/cnnConvWeightGradImage/"
  "cnn tuner: the slowest choice kept|fast/cnn/tuner.ts|if (msPerStep[variantsName(v)] < msPerStep[variantsName(best)]) best = v;|if (msPerStep[variantsName(v)] > msPerStep[variantsName(best)]) best = v;|tests/cnn_tuner_test.ts|/^fastest/"
  "cnn tuner: a remembered pick not checked against the choices that fit|fast/cnn/tuner.ts|const cached = candidates.find((v) => variantsName(v) === known);|const cached = known ? candidates.at(-1) : undefined;|tests/cnn_tuner_test.ts|/^chooseVariants/"
)

# Replaces the one occurrence of $FROM in $1 by $TO; stops the script unless there is exactly one.
mutate() {
  local file=$1 n
  n=$(FROM=$FROM perl -0777 -ne 'my $n = () = /\Q$ENV{FROM}\E/g; print $n' "$file")
  if [[ $n != 1 ]]; then
    echo "mutants: '$FROM' occurs $n times in $file, not once: fix the mutant" >&2
    exit 2
  fi
  cp -p "$file" "$work/original"
  mutated=$file
  FROM=$FROM TO=$TO perl -0777 -pe 's/\Q$ENV{FROM}\E/$ENV{TO}/' "$work/original" >"$work/mutant"
  cat "$work/mutant" >"$file"
  ! cmp -s "$work/original" "$file" || {
    echo "mutants: the mutant of $file changed nothing" >&2
    exit 2
  }
}

# Runs the selection; prints "caught", "MISSED" or "INVALID (why)"; its log in $work/log.
verdict() {
  local files=$1 filter=$2 args=()
  if [[ -n $filter ]]; then args+=(--filter "$filter"); fi
  # shellcheck disable=SC2086 # files is a space-separated list
  "${TEST[@]}" "${args[@]}" $files >"$work/log" 2>&1 && status=0 || status=$?
  local summary
  summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$work/log" | tail -n 1 || true)
  if grep -qE 'Type checking failed|^error: TS[0-9]+' "$work/log"; then
    echo "INVALID (does not type-check)"
  elif [[ $summary =~ \|\ 0\ passed\ \|\ 0\ failed ]] || [[ -z $summary ]]; then
    echo "INVALID (no test ran: ${summary:-no summary, exit $status})"
  elif [[ $summary =~ \|\ [1-9][0-9]*\ failed ]] && ((status != 0)); then
    echo "caught"
  elif ((status == 0)); then
    echo "MISSED"
  else
    echo "INVALID (exit $status without a failed test)"
  fi
}

total=0 caught=0 bad=()
for spec in "${MUTANTS[@]}"; do
  IFS='|' read -r name file FROM TO files filter <<<"$spec"
  if (($# > 0)); then
    wanted=0
    for w in "$@"; do if [[ $name == *"$w"* ]]; then wanted=1; fi; done
    ((wanted)) || continue
  fi
  total=$((total + 1))
  if [[ ${MUTANTS_BASELINE:-1} == 1 ]]; then
    base=$(verdict "$files" "$filter")
    if [[ $base != MISSED ]]; then # "MISSED" unmutated = the selection passes
      echo "mutants: the selection of '$name' does not pass unmutated: $base" >&2
      tail -n 30 "$work/log" >&2
      exit 2
    fi
  fi
  t0=$SECONDS
  mutate "$file"
  result=$(verdict "$files" "$filter")
  restore
  printf '%-8s %s (%s) — %s%s, %d s\n' "$result" "$name" "$file" "$files" \
    "${filter:+ --filter \"$filter\"}" $((SECONDS - t0))
  if [[ $result == caught ]]; then
    caught=$((caught + 1))
  else
    bad+=("$name")
    tail -n 20 "$work/log" | sed 's/^/    | /'
  fi
done
echo "mutants: $caught of $total caught${bad[*]:+; not caught: ${bad[*]}}"
((caught == total && total > 0))
