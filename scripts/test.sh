#!/usr/bin/env bash
# The one test command (README): installs what the tests need, checks style, builds the static
# binaries, and runs every test, including the ones that need root, Exim, oidentd and PHP.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
scripts/build.sh
export BASEOS_BIN_DIR="$PWD/target/x86_64-unknown-linux-gnu/release"
export INSTA_UPDATE=no
BASEOS_DEB="$(packaging/build-deb.sh)"; export BASEOS_DEB   # the .deb that tests/tests/package.rs installs
# The tests start one shared oidentd on port 113 (RFC 1413 fixes the port); stop it afterwards.
cleanup() {
  if [ -s /run/baseos-tests/oidentd.pid ]; then pkill -F /run/baseos-tests/oidentd.pid 2>/dev/null || true; fi
  rm -rf /run/baseos-tests/bin-*
}
trap cleanup EXIT
cargo test --workspace --locked -- --include-ignored
