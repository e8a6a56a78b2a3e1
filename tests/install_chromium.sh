#!/usr/bin/env bash
# Installs Debian's chromium when /usr/bin/chromium is missing: tests/web_test.ts
# drives it headless (WebGPU on SwiftShader with --enable-unsafe-webgpu).
# CHROMIUM names another place to look (tests/ci_test.ts runs this script with stand-ins).
set -euo pipefail
chromium=${CHROMIUM:-/usr/bin/chromium}
if [[ -x $chromium ]]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_chromium: no apt-get here; install Chromium at $chromium by hand" >&2
  exit 1
fi
echo "install_chromium: installing Debian's chromium (for the web page test)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
"$chromium" --version
