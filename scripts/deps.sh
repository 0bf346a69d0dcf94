#!/usr/bin/env bash
# Installs (as root, with apt-get) only the Debian 12 packages that are missing.
#   scripts/deps.sh demo   what building the library and running the demo needs
#   scripts/deps.sh test   plus what the tests, benchmarks and fuzzers need
set -euo pipefail
what=${1:-test}
pkgs=(g++ meson ninja-build pkg-config liburing-dev python3)
if [[ $what == test ]]; then
  pkgs+=(cmake libgtest-dev libgmock-dev librapidcheck-dev libbenchmark-dev libnuma-dev libboost-dev
         clang libclang-rt-14-dev)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  echo "deps: not root; run as root or install: apt-get install ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
