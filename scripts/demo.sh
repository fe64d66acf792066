#!/usr/bin/env bash
# The main job (README): BaseOS mail end to end on loopback, as root, cleaning up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh >/dev/null 2>&1 || scripts/build.sh
export BASEOS_BIN_DIR="$PWD/target/x86_64-unknown-linux-gnu/release"
status=0
"$BASEOS_BIN_DIR/baseos-demo" || status=$?
if [ -s /run/baseos-tests/oidentd.pid ]; then pkill -F /run/baseos-tests/oidentd.pid 2>/dev/null || true; fi
exit $status
