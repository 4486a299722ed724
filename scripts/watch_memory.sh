#!/usr/bin/env bash
# Memory of watch over a long capture, replayed at full speed: samples the
# process's resident set every second and prints the curve and its peak,
# and the slope over the second half (MB per minute of wall time).
#
# Usage: scripts/watch_memory.sh [CAPTURE] [-- extra watch flags]
#   default CAPTURE: /tmp/iomtguard-bench/icu20-24h.pcapng, made with
#   iomtguard simulate --beds 20 --duration 24h
set -euo pipefail
cd "$(dirname "$0")/.."
cap=${1:-/tmp/iomtguard-bench/icu20-24h.pcapng}
shift || true
[ "${1:-}" = "--" ] && shift
bin=${IOMTGUARD:-bin/iomtguard}
[ -x "$bin" ] || CGO_ENABLED=0 go build -o "$bin" ./cmd/iomtguard
if [ ! -f "$cap" ]; then
  mkdir -p "$(dirname "$cap")"
  "$bin" simulate --beds 20 --duration 24h -o "$cap"
fi
db=$(mktemp -d)/history.db
out=$(mktemp)
start=$(date +%s.%N)
"$bin" watch --replay "$cap" --speed max --http off --db "$db" -q "$@" 2>"$out.err" &
pid=$!
echo "seconds,rss_mb"
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
  now=$(date +%s.%N)
  printf "%.1f,%.1f\n" "$(echo "$now - $start" | bc)" "$(echo "${rss:-0} / 1024" | bc -l)" | tee -a "$out"
  sleep 1
done
wait "$pid"
tail -2 "$out.err"
python3 - "$out" <<'PY'
import sys
rows = [tuple(map(float, l.split(","))) for l in open(sys.argv[1]) if l.strip() and not l.startswith("seconds")]
rows = [r for r in rows if r[1] > 0]
peak = max(r[1] for r in rows)
half = rows[len(rows) // 2:]
n = len(half)
mx = sum(r[0] for r in half) / n
my = sum(r[1] for r in half) / n
slope = sum((r[0] - mx) * (r[1] - my) for r in half) / max(1e-9, sum((r[0] - mx) ** 2 for r in half))
print(f"peak RSS {peak:.1f} MB over {rows[-1][0]:.0f} s; second half: mean {my:.1f} MB, slope {slope * 60:+.2f} MB per minute")
PY
echo "history: $(du -h "$db" | cut -f1) in $db"
