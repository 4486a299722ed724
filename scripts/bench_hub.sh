#!/usr/bin/env bash
# Hub load (issue I, acceptance 4): one `iomtguard hub` process (embedded
# NATS, history on disk) and SENSORS simulated sensors (default 200) that
# each report every second for SECONDS (default 30): one second of a
# simulated 20-bed ICU each time (its analysis State, packed, and its
# session facts). Prints the hub process's CPU as a share of one core and
# the bytes per sensor-second the sensors wrote to NATS.
#
# Usage: scripts/bench_hub.sh   (RUNS=3 for three runs; SENSORS, SECONDS)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${IOMTGUARD:-bin/iomtguard}
CGO_ENABLED=0 go build -o "$bin" ./cmd/iomtguard
go test -c -o /tmp/hub.test ./internal/hub
for run in $(seq "${RUNS:-1}"); do
  dir=$(mktemp -d)
  port=$((20000 + RANDOM % 20000))
  "$bin" hub --data "$dir" --listen 127.0.0.1:$port --http off -q 2>"$dir/hub.log" &
  pid=$!
  for _ in $(seq 50); do grep -q "NATS" "$dir/hub.log" 2>/dev/null && break; sleep 0.1; done
  IOMTGUARD_HUB_URL=nats://127.0.0.1:$port IOMTGUARD_HUB_PID=$pid IOMTGUARD_HUB_SENSORS=${SENSORS:-200} IOMTGUARD_HUB_SECONDS=${SECONDS_:-${SECONDS_RUN:-30}} \
    /tmp/hub.test -test.run TestHubLoad -test.v -test.timeout 10m | grep -E "RESULT|hub process|sensors," || true
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "history: $(du -sh "$dir/history.db" | cut -f1)"
  rm -rf "$dir"
done
