#!/usr/bin/env bash
# Evaluates learned detection (anomaly.device-behaviour) without leakage:
# a baseline learned on one benign simulated day is scored on other runs
# (other seeds, other bed counts): benign runs for the false alarms per
# device-day, and one run per simulated attack (each with its own seed) for
# ROC AUC, recall, precision and delay per attack. The same captures are
# then evaluated with the rules only, for comparison.
#
# Usage: scripts/eval_baseline.sh [OUT_DIR]   (default /tmp/iomtguard-eval-baseline)
#   QUICK=1 learns on 6 h and scores shorter runs (a few minutes in all).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/iomtguard-eval-baseline}
mkdir -p "$out"
bin="$out/iomtguard"
go build -o "$bin" ./cmd/iomtguard

learn_h=24h benign_a=24h benign_b=12h attack_d=2h
if [ "${QUICK:-}" = 1 ]; then learn_h=6h benign_a=6h benign_b=3h attack_d=1h; fi

echo "== learning: 20 beds, $learn_h, seed 101"
"$bin" simulate --beds 20 --duration "$learn_h" --seed 101 -o "$out/learn.pcapng" >/dev/null
/usr/bin/time -f "learned in %e s, %M KB" "$bin" baseline learn "$out/learn.pcapng" -o "$out/ward.baseline"

echo "== scoring runs"
"$bin" simulate --beds 16 --duration "$benign_a" --seed 102 --labels "$out/benign-16.yaml" -o "$out/benign-16.pcapng" >/dev/null
"$bin" simulate --beds 24 --duration "$benign_b" --seed 103 --labels "$out/benign-24.yaml" -o "$out/benign-24.pcapng" >/dev/null
seed=200
for a in $("$bin" simulate --help | sed -n 's/.*attacks to mount: //p' | tr -d ','); do
  seed=$((seed + 1))
  "$bin" simulate --beds 12 --duration "$attack_d" --seed $seed --attack "$a" --labels "$out/attack-$a.yaml" -o "$out/attack-$a.pcapng" >/dev/null
done

# One labels file: each capture's expectations with its attacks' times and sources.
python3 - "$out" <<'EOF'
import glob, os, sys, yaml
out = sys.argv[1]
merged = {"captures": {}}
for f in sorted(glob.glob(os.path.join(out, "*.yaml"))):
    if f.endswith("merged.yaml"):
        continue
    d = yaml.safe_load(open(f))
    for name, exp in d["captures"].items():
        exp["attacks"] = [{k: a[k] for k in ("name", "start", "end", "sources", "client_ids") if k in a} for a in d.get("attacks") or []]
        merged["captures"][name] = exp
yaml.safe_dump(merged, open(os.path.join(out, "merged.yaml"), "w"))
EOF

echo "== with the baseline"
"$bin" eval --labels "$out/merged.yaml" --baseline "$out/ward.baseline" | tee "$out/with-baseline.txt" || true
"$bin" eval --labels "$out/merged.yaml" --baseline "$out/ward.baseline" --json > "$out/with-baseline.json" || true
echo "== rules only"
"$bin" eval --labels "$out/merged.yaml" | tee "$out/rules-only.txt" || true
