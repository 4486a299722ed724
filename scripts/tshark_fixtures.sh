#!/usr/bin/env bash
# Regenerates the tshark reference fixtures in testdata/tshark from tshark
# (Wireshark 4.0, Debian 12's package; the fixtures record its version).
#
#   testdata/tshark/NAME.counts      MQTT control packets by type: "msgtype count" lines, from
#                                    tshark -r F -Y mqtt -T fields -e mqtt.msgtype (one count per
#                                    value in a comma list)
#   testdata/tshark/NAME.icu.csv     tshark's ICU-dataset field export (own captures only)
#   testdata/tshark/shared/NAME.*    the same for ../shared/data/captures; the export is kept as a
#                                    SHA-256 of its text (the captures' licence keeps their data out)
#
# Usage: scripts/tshark_fixtures.sh            (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v tshark >/dev/null || { echo "tshark is needed: apt-get install tshark" >&2; exit 1; }
FIELDS=(frame.time_delta frame.time_relative frame.len ip.src ip.dst tcp.srcport tcp.dstport tcp.flags
  tcp.time_delta tcp.len tcp.ack tcp.connection.fin tcp.connection.rst tcp.connection.synack
  tcp.connection.syn tcp.flags.ack tcp.flags.fin tcp.flags.push tcp.flags.reset tcp.flags.syn
  tcp.flags.urg tcp.hdr_len tcp.payload tcp.pdu.size tcp.window_size_value tcp.checksum mqtt.clientid
  mqtt.clientid_len mqtt.conack.flags mqtt.conack.val mqtt.conflag.passwd mqtt.conflag.qos
  mqtt.conflag.reserved mqtt.conflag.retain mqtt.conflag.willflag mqtt.conflags mqtt.dupflag
  mqtt.hdrflags mqtt.kalive mqtt.len mqtt.msg mqtt.msgtype mqtt.qos mqtt.retain mqtt.topic
  mqtt.topic_len mqtt.ver mqtt.willmsg_len ip.proto ip.ttl)
EFLAGS=()
for f in "${FIELDS[@]}"; do EFLAGS+=(-e "$f"); done

# decode_as NAME: tshark -d arguments a capture needs to see its MQTT.
decode_as() {
  case "$1" in
    other-port) echo "-d tcp.port==2883,mqtt" ;;
    websocket) echo "-d tcp.port==9001,http -d tcp.port==8083,http" ;;
    *) echo "" ;;
  esac
}

counts() { # counts CAPTURE [tshark args...]
  local f=$1; shift
  tshark -r "$f" "$@" -Y mqtt -T fields -e mqtt.msgtype 2>/dev/null | tr ',' '\n' | awk 'NF' | sort -n | uniq -c | awk '{print $2, $1}' || true
}

icu() { # icu CAPTURE [tshark args...]
  local f=$1; shift
  tshark -r "$f" "$@" -T fields -E header=n -E separator=, -E quote=d -E occurrence=f "${EFLAGS[@]}" 2>/dev/null
}

mkdir -p testdata/tshark/shared
tshark --version 2>/dev/null | awk 'NR==1' > testdata/tshark/VERSION
for f in testdata/captures/*.pcap testdata/captures/*.pcapng; do
  name=$(basename "$f"); name=${name%.*}
  # shellcheck disable=SC2046
  counts "$f" $(decode_as "$name") > "testdata/tshark/$name.counts"
  # shellcheck disable=SC2046
  icu "$f" $(decode_as "$name") > "testdata/tshark/$name.icu.csv"
done
if [ -d ../shared/data/captures ]; then
  for f in ../shared/data/captures/*.pcap ../shared/data/captures/*.pcapng; do
    name=$(basename "$f")
    counts "$f" > "testdata/tshark/shared/$name.counts"
    icu "$f" | sha256sum | cut -d' ' -f1 > "testdata/tshark/shared/$name.icu.sha256"
  done
else
  echo "../shared absent: shared fixtures left as they are" >&2
fi
echo "fixtures written to testdata/tshark ($(cat testdata/tshark/VERSION))"
