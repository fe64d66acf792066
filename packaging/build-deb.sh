#!/usr/bin/env bash
# Builds the Debian package baseos-mail from the workspace: installs cargo-deb when missing,
# builds the release binaries (scripts/build.sh: static shim), writes the packaged manifest, and
# runs cargo-deb on them without rebuilding. Prints the path of the .deb on stdout (last line).
# Package metadata: [package.metadata.deb] at the end of chroot-builder/Cargo.toml.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qF "$CARGO_DEB_VERSION"; then
  echo "installing cargo-deb $CARGO_DEB_VERSION (cargo install --locked)" >&2
  cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" >&2
fi

scripts/build.sh >&2

# The packaged manifest is the repository's default manifest with two changes: the shim comes
# only from the package (/usr/lib/baseos-mail/sendmail, not the build tree), and the shim's
# config file /etc/baseos/sendmail.toml is copied into the tree. Fail loudly if the default
# manifest changed so that the edits no longer apply.
assets=target/baseos-mail-deb
mkdir -p "$assets"
src=chroot-builder/baseos.toml
shim_line='source = ["/usr/lib/baseos-mail/sendmail", "../target/x86_64-unknown-linux-gnu/release/sendmail"]'
etc_line='  "/etc/os-release",'
for line in "$shim_line" "$etc_line"; do
  if [ "$(grep -cxF -- "$line" "$src")" != 1 ]; then
    echo "error: $src has no single line '$line': update the edits in packaging/build-deb.sh to the new manifest" >&2
    exit 1
  fi
done
awk -v shim="$shim_line" -v etc="$etc_line" '
  $0 == shim { print "source = [\"/usr/lib/baseos-mail/sendmail\"]   # installed by the baseos-mail package"; next }
  $0 == etc  { print; print "  \"/etc/baseos/sendmail.toml\",   # the shim'"'"'s config (baseos-sendmail(8))"; next }
  { print }' "$src" > "$assets/baseos.toml.new"
mv "$assets/baseos.toml.new" "$assets/baseos.toml"

# The report units are exim-policy's examples (owned by exim-policy), installed by the package:
# the binary is /usr/sbin/exim-policy, not /usr/local/bin; the service is skipped while
# node_exporter's collector folder does not exist (the package enables the timer on every host,
# and ReadWritePaths= on a missing folder fails the unit every minute).
units=$assets/systemd
mkdir -p "$units"
for unit in exim-policy-report.service exim-policy-report.timer; do
  src=exim-policy/examples/$unit
  [ -f "$src" ] || { echo "error: $src is missing: packaging needs the report units" >&2; exit 1; }
  { echo "# Installed by the baseos-mail package from $src (see packaging/build-deb.sh)."
    grep -v -e '^# Install: copy' -e '^#   systemctl daemon-reload' -e '^# Runs exim-policy-report.service every minute (see that file' "$src"
  } | sed -e 's|/usr/local/bin/exim-policy|/usr/sbin/exim-policy|g' > "$units/$unit.new"
  mv "$units/$unit.new" "$units/$unit"
done
service=$units/exim-policy-report.service
if ! grep -q '^ExecStart=/usr/sbin/exim-policy report ' "$service"; then
  echo "error: $service: ExecStart is not '/usr/sbin/exim-policy report ...' after the path edit: update packaging/build-deb.sh" >&2
  exit 1
fi
collector=$(sed -n 's|^ReadWritePaths=||p' "$service")
if [ -z "$collector" ]; then
  echo "error: $service has no ReadWritePaths= (the collector folder): update packaging/build-deb.sh" >&2
  exit 1
fi
if ! grep -q '^ConditionPathIsDirectory=' "$service"; then
  sed -i "s|^\[Unit\]\$|[Unit]\nConditionPathIsDirectory=$collector|" "$service"
fi

# Man pages and completions of the admin tools, generated from their clap definitions by the
# binaries just built, so they always match --help.
docs=$assets/docs
rm -rf "$docs"
for tool in chroot-builder exim-policy; do
  "target/x86_64-unknown-linux-gnu/release/$tool" generate-docs --out "$docs" >&2
  # bash-completion loads completions/<command>, without a suffix.
  mkdir -p "$docs/bash"
  mv "$docs/completions/$tool.bash" "$docs/bash/$tool"
done

out=target/debian
mkdir -p "$out"
rm -f "$out"/baseos-mail_*.deb
cargo deb -p chroot-builder --no-build --target x86_64-unknown-linux-gnu --no-strip \
  --output "$out" >&2
deb=$(ls -t "$out"/baseos-mail_*.deb | head -n 1)
echo "built: $deb" >&2
echo "$deb"
