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
cargo test --workspace --locked -- --include-ignored
