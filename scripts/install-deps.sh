#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the demo need, when missing.
# Idempotent; safe to run on every test run. Needs root (apt-get).
set -euo pipefail
packages=(exim4-daemon-heavy exim4-base oidentd swaks php-cli msmtp jailkit file
          passwd util-linux iproute2 coreutils procps
          systemd imagemagick curl python3 perl default-mysql-client postgresql-client zip unzip bzip2
          unrar-free tcsh csh nano vim gawk bc bind9-host bsd-mailx less ncurses-bin time
          php-symfony-mailer gcc libc6-dev mawk man-db)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Do not let package installation start the host's exim4/oidentd: the tests run private ones.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
