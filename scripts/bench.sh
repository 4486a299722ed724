#!/usr/bin/env bash
# Whole-process benchmarks against the anchors, timed in the same run.
#
#   scripts/bench.sh export     iomtguard export --format icu-csv vs tshark's field export
#   scripts/bench.sh analyze    iomtguard analyze vs the seed's pipeline (tshark export, then
#                               ../shared/tools/ref_pipeline.py)
#   scripts/bench.sh files      iomtguard analyze of the capture cut into FILES files (default
#                               1440, a rotating capture's day of minutes: editcap -c) vs the
#                               capture in one file: what reading many files at once costs
#
# Input: the 1.09M-frame benchmark capture, built once with
# ../shared/tools/replicate_pcap.py (100 copies of benign.pcap, 600 s apart) into
# $BENCH_DIR (default /tmp/iomtguard-bench). RUNS runs each (default 3), the two
# alternating; the median wall time and the median peak RSS are reported, with the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-export}
RUNS=${RUNS:-3}
BENCH_DIR=${BENCH_DIR:-/tmp/iomtguard-bench}
SHARED=${SHARED:-../shared}
mkdir -p "$BENCH_DIR"
BIG="$BENCH_DIR/big-benign.pcap"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
if [ ! -s "$BIG" ]; then
  echo "building $BIG ..." >&2
  "$PY" "$SHARED/tools/replicate_pcap.py" "$SHARED/data/captures/benign.pcap" "$BIG" 100 600
fi
CGO_ENABLED=0 go build -o "$BENCH_DIR/iomtguard" ./cmd/iomtguard
IOMT="$BENCH_DIR/iomtguard"
FIELDS=$(tr -d '\n' < "$SHARED/tools/icu_fields.txt")

# side NAME_A CMD_A NAME_B CMD_B: runs the two shell commands in turn, $RUNS
# times each, alternating (a shared machine's slow minutes then fall on both
# alike); prints "NAME median_s median_rss_mb" for each, one per line.
side() {
  local na=$1 ca=$2 nb=$3 cb=$4
  local ta=() ra=() tb=() rb=()
  for i in $(seq "$RUNS"); do
    # sync before each: one command's writes are not flushed in the other's time
    sync
    /usr/bin/time -o "$BENCH_DIR/time.txt" -f "%e %M" sh -c "$ca" >/dev/null 2>&1
    read -r t r < <(tail -1 "$BENCH_DIR/time.txt"); ta+=("$t"); ra+=("$r")
    sync
    /usr/bin/time -o "$BENCH_DIR/time.txt" -f "%e %M" sh -c "$cb" >/dev/null 2>&1
    read -r t2 r < <(tail -1 "$BENCH_DIR/time.txt"); tb+=("$t2"); rb+=("$r")
    echo "run $i: $na $t s, $nb $t2 s" >&2
  done
  echo "$na $(median "${ta[@]}") $(median "${ra[@]}" | awk '{printf "%.0f", $1/1024}')"
  echo "$nb $(median "${tb[@]}") $(median "${rb[@]}" | awk '{printf "%.0f", $1/1024}')"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

frames=$(capinfos -c -M "$BIG" 2>/dev/null | awk '/Number of packets/{print $NF}' || echo 1089600)
echo "capture: $BIG ($frames frames, $(du -m "$BIG" | cut -f1) MB); $RUNS runs each; $(nproc) cores; $(date -u +%F)"
case "$what" in
export)
  # shellcheck disable=SC2086
  out=$(side tshark "tshark -r '$BIG' -T fields -E header=y -E separator=, -E quote=d -E occurrence=f $FIELDS > '$BENCH_DIR/tshark.csv'" \
    iomtguard "'$IOMT' export --format icu-csv --payloads -q -o '$BENCH_DIR/iomtguard.csv' '$BIG'")
  ;;
analyze)
  # shellcheck disable=SC2086
  out=$(side seed-pipeline "tshark -r '$BIG' -T fields -E header=y -E separator=, -E quote=d -E occurrence=f $FIELDS > '$BENCH_DIR/seed.csv' && $PY '$SHARED/tools/ref_pipeline.py' '$BENCH_DIR/seed.csv' > '$BENCH_DIR/seed.json'" \
    iomtguard "'$IOMT' analyze -q --out '$BENCH_DIR/report' '$BIG'")
  ;;
files)
  FILES=${FILES:-1440}
  ROT="$BENCH_DIR/rotating-$FILES"
  if [ ! -d "$ROT" ]; then
    mkdir -p "$ROT"
    editcap -F pcap -c $(( (frames + FILES - 1) / FILES )) "$BIG" "$ROT/part.pcap"
  fi
  out=$(side one-file "'$IOMT' analyze -q --out '$BENCH_DIR/report' '$BIG'" \
    "$(ls "$ROT" | wc -l)-files" "'$IOMT' analyze -q --out '$BENCH_DIR/report-files' '$ROT'/*.pcap")
  ;;
*)
  echo "usage: scripts/bench.sh export|analyze|files" >&2; exit 2 ;;
esac
a=$(echo "$out" | sed -n 1p)
b=$(echo "$out" | sed -n 2p)
printf '%-16s %10s %12s\n' "" "median s" "peak RSS MB"
for r in "$a" "$b"; do set -- $r; printf '%-16s %10s %12s\n' "$1" "$2" "$3"; done
set -- $a; ta=$2
set -- $b; tb=$2
if [ "$what" = files ]; then
  awk -v a="$ta" -v b="$tb" 'BEGIN{printf "the files take %.2fx the time of the one\n", b/a}'
else
  awk -v a="$ta" -v b="$tb" 'BEGIN{printf "speed-up: %.1fx\n", a/b}'
fi
