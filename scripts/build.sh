#!/usr/bin/env bash
# Builds the release binaries. The shim is linked statically (glibc, crt-static) so that it runs
# inside a chroot with no libraries; passing --target keeps build scripts and proc-macros dynamic.
set -euo pipefail
cd "$(dirname "$0")/.."
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --locked --target x86_64-unknown-linux-gnu --bins "$@"
echo "built: target/x86_64-unknown-linux-gnu/release/{sendmail,chroot-builder,exim-policy}" >&2
