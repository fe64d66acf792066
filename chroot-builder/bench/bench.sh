#!/usr/bin/env bash
# Benchmark, side by side in one run on the same binary set (the shipped manifest):
#   build      vs  jk_init (jailkit) with an equivalent ini
#   load       vs  cp -a of the master into a tmpfs
#   sync (nothing changed), check
# Prints wall time, peak RSS, files and bytes of each, and the tmpfs memory the loaded tree uses.
# Needs root. Mounts happen in a private mount namespace (unshare -m): nothing stays mounted.
# Each step runs twice and the second (warm page cache) run is reported, so both tools read
# from the same cache state.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "bench.sh: run as root" >&2; exit 77; }
command -v jk_init >/dev/null || { echo "bench.sh: jk_init missing: apt-get install jailkit" >&2; exit 69; }

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -q -p chroot-builder --bin chroot-builder
CB="$CARGO_TARGET_DIR/release/chroot-builder"
MANIFEST="$PWD/chroot-builder/baseos.toml"
SHIM="${SHIM:-${BASEOS_BIN_DIR:-$PWD/target/x86_64-unknown-linux-gnu/release}/sendmail}"
[ -f "$SHIM" ] || { echo "bench.sh: no shim at $SHIM: run scripts/build.sh or set SHIM=" >&2; exit 69; }

W="${BENCH_DIR:-$CARGO_TARGET_DIR/bench-chroot}"
rm -rf "$W"
mkdir -p "$W"
chmod 755 "$W"
ARGS=(--quiet --manifest "$MANIFEST" --master "$W/master" --disk "$W/disk" --live "$W/live")

timed() { # label, command...: prints "label wall_s peak_rss_MB"
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$W/time.$$" "$@" >"$W/out.$$" 2>&1 || { cat "$W/out.$$" >&2; return 1; }
  read -r wall rss <"$W/time.$$"
  printf '%s %s %s\n' "$label" "$wall" "$((rss / 1024))"
}
count() { # files (non-folders) and bytes below the given folders
  local files bytes
  files=$(find "$@" -xdev ! -type d | wc -l)
  bytes=$(du -sxcb "$@" | tail -1 | cut -f1)
  echo "$files $bytes"
}
row() { printf '%-34s %8s %8s %8s %10s\n' "$@"; }

# The same set for jk_init: binaries, memory and disk folders, /etc files, devices.
python3 - "$MANIFEST" >"$W/jk.ini" <<'EOF'
import glob, os, shutil, sys, tomllib
m = tomllib.load(open(sys.argv[1], "rb"))
paths = ["/bin/sh"]  # something under /bin first: jk_init crashes on merged-/usr otherwise
for n in m["binaries"]["names"]:
    for d in m["binaries"]["search"]:
        p = os.path.join(d, n)
        if os.path.exists(p):
            paths.append(p)
            break
for pat in m["memory"]["paths"] + m["disk"]["paths"] + m["etc"]["copy"] + m["php"]["ini"]:
    paths += sorted(glob.glob(pat))
devices = ["/dev/" + d for d in m["devices"]["allow"]]
seen = []
for p in paths:
    if p not in seen:
        seen.append(p)
print("[uidbasics]\npaths = /etc/nsswitch.conf, /etc/ld.so.conf, /lib/x86_64-linux-gnu/libnss_files.so.2, /lib/x86_64-linux-gnu/libnss_dns.so.2")
print("[baseos]\nincludesections = uidbasics\npaths = " + ", ".join(seen))
print("devices = " + ", ".join(devices))
EOF

echo "chroot-builder bench: $(date -u +%FT%TZ), $(nproc) cores, $(uname -r)"
row "step" "wall s" "RSS MB" "files" "MB"

# build vs jk_init
for i in 1 2; do
  rm -rf "$W/master" "$W/disk"
  b=$(timed "build" "$CB" "${ARGS[@]}" build --shim "$SHIM")
done
read -r _ wall rss <<<"$b"; read -r f by <<<"$(count "$W/master" "$W/disk")"
row "chroot-builder build" "$wall" "$rss" "$f" "$((by / 1000000))"
for i in 1 2; do
  rm -rf "$W/jail"; mkdir -p "$W/jail"
  j=$(timed "jk_init" jk_init -c "$W/jk.ini" -j "$W/jail" baseos)
done
read -r _ wall rss <<<"$j"; read -r f by <<<"$(count "$W/jail")"
row "jk_init (same set)" "$wall" "$rss" "$f" "$((by / 1000000))"
b=$(timed "rebuild" "$CB" "${ARGS[@]}" build --shim "$SHIM")
read -r _ wall rss <<<"$b"
row "chroot-builder build, no change" "$wall" "$rss" "-" "-"

# load vs cp -a, sync, check: in a private mount namespace.
export CB W
export -f timed row count
unshare -m --propagation private bash -c '
  set -euo pipefail
  ARGS=(--quiet --manifest "'"$MANIFEST"'" --master "$W/master" --disk "$W/disk" --live "$W/live")
  for i in 1 2; do
    "$CB" "${ARGS[@]}" unload >/dev/null
    l=$(timed load "$CB" "${ARGS[@]}" load)
  done
  read -r _ wall rss <<<"$l"
  used=$(df -B1 --output=used "$W/live" | tail -1)
  read -r f by <<<"$(count "$W/live")"
  row "chroot-builder load" "$wall" "$rss" "$f" "$((by / 1000000))"
  s=$(timed sync "$CB" "${ARGS[@]}" sync)
  read -r _ wall rss <<<"$s"
  row "chroot-builder sync, no change" "$wall" "$rss" "-" "-"
  c=$(timed check "$CB" "${ARGS[@]}" check)
  read -r _ wall rss <<<"$c"
  row "chroot-builder check (+disk tier)" "$wall" "$rss" "-" "-"
  "$CB" "${ARGS[@]}" unload >/dev/null
  mkdir -p "$W/cp"
  for i in 1 2; do
    mountpoint -q "$W/cp" && umount "$W/cp"
    mount -t tmpfs -o size=1g,mode=0755 tmpfs "$W/cp"
    k=$(timed cp cp -a "$W/master/." "$W/cp/")
  done
  read -r _ wall rss <<<"$k"
  cpused=$(df -B1 --output=used "$W/cp" | tail -1)
  read -r f by <<<"$(count "$W/cp")"
  row "cp -a master into tmpfs" "$wall" "$rss" "$f" "$((by / 1000000))"
  umount "$W/cp"
  echo
  echo "tmpfs memory of the loaded tree: $((used / 1000000)) MB (cp -a copy: $((cpused / 1000000)) MB); disk tier on disk: $(du -sb "$W/disk" | cut -f1 | sed "s/......$//") MB"
'
jk_mem=$(du -sb "$W/jail" | cut -f1)
echo "jk_init jail on disk: $((jk_mem / 1000000)) MB (everything in one tier)"
rm -f "$W"/time.* "$W"/out.*
