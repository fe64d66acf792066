#!/usr/bin/env bash
# Benchmark of `exim-policy report` on a synthetic Debian-style Exim main log, against
# `eximstats -t_remote_users`, the mawk one-liner that counts U= on <= lines, and `grep -c`,
# all on the same file in one run; then the same log as gzip rotations; then peak memory on a
# small and a large log. Prints seconds, MB/s, lines/s, peak RSS and ratios, and checks the
# report's per-user counts against the generator's ground truth.
#
#   exim-policy/bench/report-bench.sh
#   BENCH_SIZE_MB=1024   size of the big log (default 1024)
#   BENCH_SMALL_MB=100   size of the small log for the memory comparison (default 100)
#   BENCH_DIR=/tmp/exim-policy-bench   where the logs go (kept for re-runs; delete it after)
#   BENCH_EXIMSTATS=1    0 skips eximstats (it takes a minute or more per GB)
#   BENCH_USERS=2000     distinct users in the log
#   BENCH_REPEAT=3       runs of each fast tool; the best time is shown (eximstats runs once)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
size_mb="${BENCH_SIZE_MB:-1024}"
small_mb="${BENCH_SMALL_MB:-100}"
dir="${BENCH_DIR:-/tmp/exim-policy-bench}"
run_eximstats="${BENCH_EXIMSTATS:-1}"
users="${BENCH_USERS:-2000}"
repeat="${BENCH_REPEAT:-3}"
target="${CARGO_TARGET_DIR:-$root/target}"

die() { echo "report-bench: $*" >&2; exit 1; }

# Tools: mawk (Debian's default awk) and GNU time for peak RSS.
missing=()
command -v mawk >/dev/null || missing+=(mawk)
[ -x /usr/bin/time ] || missing+=(time)
if ((${#missing[@]})); then
  [ "$(id -u)" = 0 ] || die "install ${missing[*]} (apt-get install ${missing[*]}) or run as root"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
eximstats=/usr/sbin/eximstats
if [ "$run_eximstats" = 1 ] && [ ! -x "$eximstats" ]; then
  echo "report-bench: $eximstats not found (package exim4-base): skipping it" >&2
  run_eximstats=0
fi

# Space: the big log, its gzip rotations (~1/8), the small log, and slack.
mkdir -p "$dir"
need=$((size_mb + size_mb / 4 + small_mb + 256))
have=$(df -Pm "$dir" | awk 'NR == 2 { print $4 }')
existing=$(du -sm "$dir" | awk '{ print $1 }')
((have + existing >= need)) || die "$dir: need ${need} MB free, have ${have} MB: set BENCH_DIR or BENCH_SIZE_MB"

echo "== building (release)" >&2
(cd "$root" && CARGO_TARGET_DIR="$target" cargo build --release -q -p exim-policy --bin exim-policy --example gen_mainlog)
bin="$target/release/exim-policy"
gen="$target/release/examples/gen_mainlog"

big="$dir/mainlog-${size_mb}mb"
small="$dir/mainlog-${small_mb}mb"
for spec in "$big:$size_mb" "$small:$small_mb"; do
  f="${spec%%:*}"; mb="${spec##*:}"
  if [ ! -s "$f" ] || [ ! -s "$f.truth" ]; then
    echo "== generating $f ($mb MB, $users users)" >&2
    "$gen" "$f" --size-mb "$mb" --users "$users" --truth "$f.truth"
  fi
done
rot="$dir/rotated-${size_mb}mb"
if [ ! -s "$rot/mainlog.1.gz" ]; then
  echo "== cutting $big into 10 gzip rotations" >&2
  rm -rf "$rot"; mkdir -p "$rot"
  (cd "$rot" && split -n l/10 -d -a 2 "$big" part.)
  for i in $(seq 0 9); do
    mv "$rot/part.0$i" "$rot/mainlog.$((10 - i))"   # part 00 is the oldest: mainlog.10
  done
  ls "$rot"/mainlog.* | xargs -P "$(nproc)" -n 1 gzip -6
fi

bytes=$(stat -c %s "$big")
lines=$(wc -l < "$big")
gzbytes=$(cat "$rot"/mainlog.*.gz | wc -c)
echo "== $big: $((bytes / 1048576)) MB, $lines lines; rotations: 10 gzip files, $((gzbytes / 1048576)) MB; $(nproc) CPUs" >&2
cat "$big" "$rot"/mainlog.*.gz > /dev/null   # warm the page cache for every contender

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
results=()
# measure [-1] LABEL INPUT_BYTES CMD...: runs CMD $repeat times (once with -1), stdout to
# $tmp/LABEL.out; records the best time and the highest peak RSS.
measure() {
  local n="$repeat"
  if [ "$1" = -1 ]; then n=1; shift; fi
  local label="$1" inbytes="$2"; shift 2
  local best="" maxkb=0 all=""
  for _ in $(seq "$n"); do
    /usr/bin/time -f "%e %M" -o "$tmp/$label.time" "$@" > "$tmp/$label.out" 2> "$tmp/$label.err" \
      || { cat "$tmp/$label.err" >&2; die "$label failed"; }
    read -r secs kb < <(tail -n 1 "$tmp/$label.time")
    all="$all $secs"
    if [ -z "$best" ] || awk -v a="$secs" -v b="$best" 'BEGIN { exit !(a < b) }'; then best="$secs"; fi
    ((kb > maxkb)) && maxkb="$kb"
  done
  results+=("$label $best $maxkb $inbytes")
  printf '   %-34s %8.2f s  %6d MB RSS   (runs:%s)\n' "$label" "$best" $((maxkb / 1024)) "$all" >&2
}

echo "== running (best of $repeat; load average now: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
measure "exim-policy report" "$bytes" "$bin" report "$big"
measure "exim-policy report --jobs 1" "$bytes" "$bin" report --jobs 1 "$big"
measure "exim-policy report --format csv" "$bytes" "$bin" report --format csv "$big"
measure "mawk one-liner" "$bytes" mawk '/ <= / { for (i = 1; i <= NF; i++) if ($i ~ /^U=/) c[$i]++ } END { for (u in c) print c[u], u }' "$big"
measure "grep -c ' <= '" "$bytes" grep -c ' <= ' "$big"
measure "exim-policy report (10 .gz)" "$bytes" "$bin" report "$rot"/mainlog.*.gz
measure "zcat | mawk one-liner (10 .gz)" "$bytes" sh -c "zcat $rot/mainlog.*.gz | mawk '/ <= / { for (i = 1; i <= NF; i++) if (\$i ~ /^U=/) c[\$i]++ } END { for (u in c) print c[u], u }'"
measure "exim-policy report (${small_mb} MB)" "$(stat -c %s "$small")" "$bin" report "$small"
if [ "$run_eximstats" = 1 ]; then
  echo "   (eximstats takes a while)" >&2
  measure -1 "eximstats -t_remote_users" "$bytes" "$eximstats" -t_remote_users "$big"
fi

report_secs=$(printf '%s\n' "${results[@]}" | awk '$1 == "exim-policy" && $2 == "report" && NF == 5 { print $3 }')
echo
printf '%-36s %9s %9s %11s %9s %14s\n' tool seconds "MB/s" "lines/s" "RSS MB" "x report time"
for r in "${results[@]}"; do
  # label may contain spaces: the last three fields are secs, kb, bytes.
  label="${r% * * *}"; set -- ${r##"$label" }
  secs="$1"; kb="$2"; inb="$3"
  awk -v l="$label" -v s="$secs" -v kb="$kb" -v b="$inb" -v lines="$lines" -v base="$report_secs" 'BEGIN {
    s0 = (s > 0 ? s : 0.01)
    lps = (l ~ /MB\)$/) ? "-" : sprintf("%.1fM", lines / s0 / 1e6)
    printf "%-36s %9.2f %9.0f %11s %9.1f %14.1f\n", l, s, b / 1048576 / s0, lps, kb / 1024, s / base }'
done

echo
echo "== correctness against the generator's ground truth ($big.truth)"
awk -F, 'NR > 1 { print $1 "\t" $2 "\t" $3 "\t" $4 "\t" $5 }' "$tmp/exim-policy report --format csv.out" | sort > "$tmp/got.tsv"
tail -n +2 "$big.truth" | sort > "$tmp/want.tsv"
if cmp -s "$tmp/got.tsv" "$tmp/want.tsv"; then
  echo "exim-policy report: mails, recipients, bytes, rejections exact for all $(wc -l < "$tmp/want.tsv") users"
else
  echo "exim-policy report: DIFFERS from the truth:"; diff "$tmp/want.tsv" "$tmp/got.tsv" | head -20; exit 1
fi
awk -F'\t' 'NR > 1 { print "U=" $1, $2 }' "$big.truth" | sort > "$tmp/truth-mails"
awk '{ print $2, $1 }' "$tmp/mawk one-liner.out" | sort > "$tmp/awk-mails"
wrong=$(join -a 1 -a 2 -e 0 -o 0,1.2,2.2 "$tmp/truth-mails" "$tmp/awk-mails" | awk '$2 != $3' | wc -l)
echo "mawk one-liner: $wrong of its $(wc -l < "$tmp/awk-mails") users wrong or invented (e.g. $(join -v 2 "$tmp/truth-mails" "$tmp/awk-mails" | head -3 | tr '\n' ' '))"
if [ "$run_eximstats" = 1 ]; then
  echo "eximstats: lists $(grep -c -E 'Debian-exim|evil' "$tmp/eximstats -t_remote_users.out" || true) lines naming Debian-exim or an invented 'evil' user"
fi
