#!/usr/bin/env bash
# usage: run.sh <multiproc checkout> <scratch dir>
set -euo pipefail
src=$(cd "$1" && pwd); work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work"; mkdir -p "$work/subprojects"
cp "$here/project/meson.build" "$here/project/main.cpp" "$work/"
ln -s "$src" "$work/subprojects/multiproc"
cd "$work"
meson setup build >setup.log 2>&1 || { cat setup.log; exit 1; }
# A consumer needs nothing but a compiler and liburing: the test-only dependencies must not
# even be looked up when multiproc is a subproject.
if grep -E "Run-time dependency (GTest|rapidcheck|benchmark|boost|numa)" setup.log; then
  echo "consumer: the subproject looked up test/bench dependencies" >&2; exit 1
fi
ninja -C build >build.log 2>&1 || { cat build.log; exit 1; }
./build/consumer
