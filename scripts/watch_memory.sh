#!/usr/bin/env bash
# Memory of watch over a long capture, replayed at full speed, with the
# history on: samples the process's resident set and Go's live heap (from
# /metrics) with the capture time reached, every 0.25 s, and prints the
# curve, the peak, and the trend over the second half of the capture
# (least-squares slope, MB per hour of capture, and the change it adds up
# to over that half).
#
# Usage: scripts/watch_memory.sh [CAPTURE] [-- extra watch flags]
#   default CAPTURE: /tmp/iomtguard-bench/icu20-24h.pcapng, made with
#   iomtguard simulate --beds 20 --duration 24h
#   CSV=FILE keeps the samples (capture_h,wall_s,rss_mb,heap_mb).
#   NODB=1 runs without the history (to tell its memory from the rest).
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
dir=$(mktemp -d)
db=$dir/history.db
csv=${CSV:-$dir/memory.csv}
port=$((20000 + RANDOM % 20000))
start=$(date +%s.%N)
dbflag=(--db "$db")
[ -n "${NODB:-}" ] && dbflag=()
"$bin" watch --replay "$cap" --speed max --http 127.0.0.1:$port "${dbflag[@]}" -q "$@" 2>"$dir/err" &
pid=$!
echo "capture_h,wall_s,rss_mb,heap_mb" >"$csv"
first=""
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || true)
  m=$(curl -s --max-time 1 "http://127.0.0.1:$port/metrics" || true)
  ct=$(echo "$m" | awk '/^iomtguard_watch_capture_time_seconds / {printf "%.0f", $2}')
  heap=$(echo "$m" | awk '/^go_memstats_heap_inuse_bytes / {printf "%.1f", $2/1048576}')
  if [ -n "$rss" ] && [ -n "$ct" ] && [ "$ct" -gt 1000000000 ] && [ -n "$heap" ]; then
    [ -z "$first" ] && first=$ct
    now=$(date +%s.%N)
    echo "$(echo "($ct - $first) / 3600" | bc -l),$(echo "$now - $start" | bc),$(echo "$rss / 1024" | bc -l),$heap" >>"$csv"
  fi
  sleep 0.25
done
wait "$pid"
tail -1 "$dir/err"
python3 - "$csv" <<'PY'
import sys
rows = [tuple(map(float, l.split(","))) for l in open(sys.argv[1]).read().split("\n")[1:] if l.strip()]
peak = max(r[2] for r in rows)
span = rows[-1][0]
half = [r for r in rows if r[0] >= span / 2]
def slope(k):
    n = len(half)
    mx = sum(r[0] for r in half) / n
    my = sum(r[k] for r in half) / n
    return sum((r[0] - mx) * (r[k] - my) for r in half) / max(1e-9, sum((r[0] - mx) ** 2 for r in half))
print("capture h   RSS MB   heap in use MB")
step = max(1, len(rows) // 24)
for r in rows[::step] + [rows[-1]]:
    print(f"{r[0]:8.1f} {r[2]:8.1f} {r[3]:10.1f}")
sr, sh = slope(2), slope(3)
print(f"peak RSS {peak:.1f} MB over {span:.1f} h of capture ({rows[-1][1]:.0f} s); "
      f"second half ({len(half)} samples): RSS {sr:+.2f} MB/h of capture ({sr * span / 2:+.1f} MB over it), "
      f"heap in use {sh:+.2f} MB/h ({sh * span / 2:+.1f} MB)")
PY
[ -f "$db" ] && echo "history: $(du -h "$db" | cut -f1) in $db"
echo "samples in $csv"
