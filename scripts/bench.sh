#!/usr/bin/env bash
# Whole-process benchmarks against the anchors, timed in the same run.
#
#   scripts/bench.sh export     iomtguard export --format icu-csv vs tshark's field export
#   scripts/bench.sh analyze    iomtguard analyze vs the seed's pipeline (tshark export, then
#                               ../shared/tools/ref_pipeline.py)
#   scripts/bench.sh files      iomtguard analyze of the capture cut into FILES files (default
#                               1440, a rotating capture's day of minutes: editcap -c) vs the
#                               capture in one file: what reading many files at once costs
#   scripts/bench.sh four       iomtguard analyze of one 1.09M-frame file vs four given at once
#                               vs four processes at once (one file each: the bound on what an
#                               engine per input could reach on this machine)
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

# side NAME CMD NAME CMD ...: runs the shell commands in turn, $RUNS times
# each, alternating (a shared machine's slow minutes then fall on all
# alike); prints "NAME median_s median_rss_mb" for each, one per line.
side() {
  local names=() cmds=() ts=() rs=() k i t r line
  while [ $# -gt 0 ]; do names+=("$1"); cmds+=("$2"); ts+=(""); rs+=(""); shift 2; done
  for i in $(seq "$RUNS"); do
    line="run $i:"
    for k in "${!cmds[@]}"; do
      # sync before each: one command's writes are not flushed in the other's time
      sync
      /usr/bin/time -o "$BENCH_DIR/time.txt" -f "%e %M" sh -c "${cmds[$k]}" >/dev/null 2>&1
      read -r t r < <(tail -1 "$BENCH_DIR/time.txt")
      ts[$k]+="$t "; rs[$k]+="$r "
      line+=" ${names[$k]} $t s,"
    done
    echo "${line%,}" >&2
  done
  for k in "${!cmds[@]}"; do
    # shellcheck disable=SC2086
    echo "${names[$k]} $(median ${ts[$k]}) $(median ${rs[$k]} | awk '{printf "%.0f", $1/1024}')"
  done
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
four)
  # Four 1.09M-frame files: a rotating capture's four consecutive parts
  # (400 copies of benign.pcap cut in four). Timed: one part alone, the four
  # given at once (one merged stream), and the four analysed by four
  # processes at once, each its own engine with nothing merged: the most an
  # engine per input could gain on this machine's cores.
  FOUR="$BENCH_DIR/four"
  if [ ! -s "$FOUR/part_00003.pcap" ]; then
    mkdir -p "$FOUR"
    "$PY" "$SHARED/tools/replicate_pcap.py" "$SHARED/data/captures/benign.pcap" "$FOUR/all.pcap" 400 600
    editcap -F pcap -c "$frames" "$FOUR/all.pcap" "$FOUR/p.pcap"
    i=0; for p in "$FOUR"/p_*.pcap; do mv "$p" "$FOUR/part_$(printf %05d $i).pcap"; i=$((i + 1)); done
    rm -f "$FOUR/all.pcap"
  fi
  out=$(side one-part "'$IOMT' analyze -q --no-report --json '$BENCH_DIR/one.json' '$FOUR/part_00000.pcap'" \
    four-at-once "'$IOMT' analyze -q --no-report --json '$BENCH_DIR/four.json' '$FOUR'/part_0000[0-3].pcap" \
    four-processes "for p in '$FOUR'/part_0000[0-3].pcap; do '$IOMT' analyze -q --no-report --json \"\$p.json\" \"\$p\" & done; wait")
  ;;
*)
  echo "usage: scripts/bench.sh export|analyze|files|four" >&2; exit 2 ;;
esac
printf '%-16s %10s %12s\n' "" "median s" "peak RSS MB"
echo "$out" | while read -r n t r; do printf '%-16s %10s %12s\n' "$n" "$t" "$r"; done
ta=$(echo "$out" | sed -n 1p | cut -d' ' -f2)
tb=$(echo "$out" | sed -n 2p | cut -d' ' -f2)
case "$what" in
files) awk -v a="$ta" -v b="$tb" 'BEGIN{printf "the files take %.2fx the time of the one\n", b/a}' ;;
four)
  tc=$(echo "$out" | sed -n 3p | cut -d' ' -f2)
  awk -v a="$ta" -v b="$tb" -v c="$tc" 'BEGIN{printf "four at once take %.2fx the time of one; four processes at once %.2fx\n", b/a, c/a}' ;;
*) awk -v a="$ta" -v b="$tb" 'BEGIN{printf "speed-up: %.1fx\n", a/b}' ;;
esac
