#!/usr/bin/env bash
# Benchmark (not a test): submits the same 10 KB mail N times to one private Exim daemon with
#   1. our static `sendmail` (scripts/build.sh),
#   2. msmtp (Debian package) in sendmail mode, with a temp msmtprc (no auth, no TLS),
#   3. Exim's own `sendmail -t` (local submission `exim4 -C <conf> -odq -t -i`, same config),
# and prints, side by side: wall time per mail (mean/median/p95), CPU time (user+sys from
# wait4) and peak RSS, with ratios against ours; plus the size of the stripped static binary.
#
# The daemon runs with `queue_only` so delivery cost does not dominate, and (by default)
# without ident lookups; IDENT=1 turns loopback ident on (needs oidentd on port 113, e.g.
# the test harness's). Needs root (private Exim under -C, trusted_configs entry).
#
# It then runs the two SMTP clients against a do-nothing sink (sink.py) to show their own cost.
#
# usage: sendmail-shim/bench/bench.sh [N]      (default 200)
#   BIN=/path/to/sendmail   the static shim (default: the workspace's release build)
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-200}"
BIN="${BIN:-${BASEOS_BIN_DIR:-$PWD/target/x86_64-unknown-linux-gnu/release}/sendmail}"
HERE="$PWD/sendmail-shim/bench"
[ "$(id -u)" = 0 ] || { echo "bench.sh: needs root (private Exim with -C)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "bench.sh: $BIN missing: run scripts/build.sh (or set BIN=)" >&2; exit 1; }
command -v msmtp >/dev/null || { echo "bench.sh: msmtp missing: apt-get install msmtp" >&2; exit 1; }
command -v exim4 >/dev/null || { echo "bench.sh: exim4 missing: apt-get install exim4-daemon-heavy" >&2; exit 1; }

# BENCH_TMP=/dev/shm puts Exim's spool on tmpfs: no fsync cost, so the clients' own costs show.
T="$(mktemp -d "${BENCH_TMP:-/tmp}/shim-bench.XXXXXX")"
chmod 755 "$T"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
mkdir -p "$T"/{spool,log}
chown Debian-exim:Debian-exim "$T"/{spool,log}
if [ "${IDENT:-0}" = 1 ]; then
  ident="rfc1413_hosts = 127.0.0.1
rfc1413_query_timeout = 2s"
else
  ident="rfc1413_hosts =
rfc1413_query_timeout = 0s"
fi
cat > "$T/exim.conf" <<CONF
primary_hostname = bench.example
qualify_domain = bench.example
domainlist local_domains = bench.example
exim_user = Debian-exim
exim_group = Debian-exim
never_users = root
spool_directory = $T/spool
log_file_path = $T/log/%slog
pid_file_path = $T/exim.pid
daemon_smtp_ports = $PORT
local_interfaces = 127.0.0.1
host_lookup =
$ident
queue_only = true
keep_environment =
tls_advertise_hosts =
smtp_accept_max = 200
smtp_accept_queue_per_connection = 0
acl_smtp_rcpt = acl_rcpt
begin acl
acl_rcpt:
  accept domains = +local_domains
  deny   message = relay not permitted
begin routers
begin transports
CONF
chmod 644 "$T/exim.conf"
exim4 -C "$T/exim.conf" -bV >/dev/null
echo "$T/exim.conf" >> /etc/exim4/trusted_configs

cleanup() {
  [ -f "$T/exim.pid" ] && kill "$(cat "$T/exim.pid")" 2>/dev/null || true
  [ -n "${EXIM_PID:-}" ] && kill "$EXIM_PID" 2>/dev/null || true
  [ -n "${SINK_PID:-}" ] && kill "$SINK_PID" 2>/dev/null || true
for f in "$T"/stderr.*; do
  [ -s "$f" ] && { echo "stderr of the last ${f##*.} run:"; cat "$f"; }
done
  sed -i "\\|^$T/exim.conf\$|d" /etc/exim4/trusted_configs
  rm -rf "$T"
}
trap cleanup EXIT
exim4 -C "$T/exim.conf" -bdf &
EXIM_PID=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.05
done

# Static helper that forks/execs each run and reads wait4's rusage (see spawn.c for why C).
gcc -O2 -static -o "$T/spawn" "$HERE/spawn.c"

# The 10 KB mail: headers as PHP writes them, 140 lines of 72 octets of body.
{
  printf 'To: inbox@bench.example\nSubject: bench\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n'
  for i in $(seq 1 140); do printf '%03d %s\n' "$i" "$(printf 'x%.0s' $(seq 1 67))"; done
} > "$T/mail.txt"
SIZE=$(stat -c %s "$T/mail.txt")

cat > "$T/shim.toml" <<CONF
domain = "bench.example"
CONF
cat > "$T/msmtprc" <<CONF
defaults
auth off
tls off
account default
host 127.0.0.1
port $PORT
from bench@bench.example
CONF
chmod 600 "$T/msmtprc"

run() { local name=$1; shift; "$T/spawn" "$name" "$N" "$T/mail.txt" "$T/stderr.$name" -- "$@"; }
{
  BASEOS_SENDMAIL_CONFIG="$T/shim.toml" run shim "$BIN" -p "$PORT" -t -i
  run msmtp msmtp -C "$T/msmtprc" -t -i
  run exim-odq-t exim4 -C "$T/exim.conf" -odq -t -i
  run floor "$T/spawn" --noop
} > "$T/results.tsv"

# The same two SMTP clients against a do-nothing sink: their own cost without Exim's.
python3 "$HERE/sink.py" "$T/sink.port" &
SINK_PID=$!
for _ in $(seq 100); do [ -s "$T/sink.port" ] && break; sleep 0.05; done
SINK_PORT=$(cat "$T/sink.port")
sed "s/^port .*/port $SINK_PORT/" "$T/msmtprc" > "$T/msmtprc.sink"
chmod 600 "$T/msmtprc.sink"
{
  BASEOS_SENDMAIL_CONFIG="$T/shim.toml" run shim-sink "$BIN" -p "$SINK_PORT" -t -i
  run msmtp-sink msmtp -C "$T/msmtprc.sink" -t -i
} > "$T/sink.tsv"
kill "$SINK_PID" 2>/dev/null || true

arrived=$(grep -c ' <= ' "$T/log/mainlog" || true)
stripped=$(stat -c %s "$BIN")
strip -o "$T/sendmail.stripped" "$BIN" 2>/dev/null && stripped=$(stat -c %s "$T/sendmail.stripped")

echo "mail: $SIZE octets, $N submissions per tool to a private Exim $(exim4 -bV 2>/dev/null | sed -n 's/^Exim version \([^ ]*\).*/\1/p') (queue_only, ident ${IDENT:-0}) on 127.0.0.1:$PORT"
echo "arrivals logged by Exim: $arrived (expected $((3 * N)))"
[ "$arrived" = $((3 * N)) ] || echo "WARNING: not every submission arrived" >&2
echo "static shim: $(file -b "$BIN" | cut -d, -f1-2,4), stripped size $stripped octets"
echo
table() {
  awk -F'\t' '
  NR == 1 { base_wall = $4; base_cpu = $7; base_rss = $8 }
  $1 == "floor" { floor = $0; next }
  { rows[++n] = $0 }
  END {
    printf "%-14s %6s %5s | %9s %9s %9s %7s | %8s %7s | %9s %7s\n", "tool", "runs", "fail", "wall mean", "median", "p95", "x ours", "cpu ms", "x ours", "maxRSS KiB", "x ours"
    for (i = 1; i <= n; i++) {
      split(rows[i], f, "\t")
      printf "%-14s %6d %5d | %9.2f %9.2f %9.2f %7.1f | %8.2f %7.1f | %9d %7.1f\n", f[1], f[2], f[3], f[4], f[5], f[6], f[4] / base_wall, f[7], (base_cpu > 0 ? f[7] / base_cpu : 0), f[8], f[8] / base_rss
    }
    split(floor, f, "\t")
    printf "(floor: fork+exec of the static measuring helper itself: %.2f ms wall, %.2f ms cpu, %d KiB RSS)\n", f[4], f[7], f[8]
  }' "$1"
}
echo "Against the private Exim:"
table "$T/results.tsv"
echo
echo "Against a do-nothing loopback sink (the clients' own cost; sink.py):"
{ cat "$T/sink.tsv"; grep '^floor' "$T/results.tsv"; } > "$T/sink2.tsv"
table "$T/sink2.tsv"
