#!/usr/bin/env python3
"""Compare iomtguard's icu-csv export of a capture with tshark's field export of
the same capture, column by column, row by row (same frame order).

Usage: compare_icu.py CAPTURE [--iomtguard BIN] [--json]

Runs `tshark -T fields -E header=y -E separator=, -E quote=d -E occurrence=f`
with the 50 fields of ../shared/tools/icu_fields.txt (built in below) and
`iomtguard export --format icu-csv`, then prints, per column, the share of rows
that agree. Time columns agree within 2 microseconds; others must be equal as
text. Exit status 1 when a checked column agrees on less than 99.9 % of rows.
"""
import argparse
import csv
import io
import json
import subprocess
import sys

csv.field_size_limit(1 << 30)

FIELDS = ("frame.time_delta frame.time_relative frame.len ip.src ip.dst tcp.srcport tcp.dstport "
          "tcp.flags tcp.time_delta tcp.len tcp.ack tcp.connection.fin tcp.connection.rst "
          "tcp.connection.synack tcp.connection.syn tcp.flags.ack tcp.flags.fin tcp.flags.push "
          "tcp.flags.reset tcp.flags.syn tcp.flags.urg tcp.hdr_len tcp.payload tcp.pdu.size "
          "tcp.window_size_value tcp.checksum mqtt.clientid mqtt.clientid_len mqtt.conack.flags "
          "mqtt.conack.val mqtt.conflag.passwd mqtt.conflag.qos mqtt.conflag.reserved "
          "mqtt.conflag.retain mqtt.conflag.willflag mqtt.conflags mqtt.dupflag mqtt.hdrflags "
          "mqtt.kalive mqtt.len mqtt.msg mqtt.msgtype mqtt.qos mqtt.retain mqtt.topic "
          "mqtt.topic_len mqtt.ver mqtt.willmsg_len ip.proto ip.ttl").split()
TIME = {"frame.time_delta", "frame.time_relative", "tcp.time_delta"}
# The columns the acceptance criterion names (the rest are reported too).
CHECKED = TIME | {"frame.len", "ip.src", "ip.dst", "tcp.srcport", "tcp.dstport", "tcp.len",
                  "tcp.hdr_len", "tcp.flags", "tcp.flags.ack", "tcp.flags.fin", "tcp.flags.push",
                  "tcp.flags.reset", "tcp.flags.syn", "tcp.flags.urg", "ip.ttl", "ip.proto",
                  "mqtt.msgtype", "mqtt.len", "mqtt.qos", "mqtt.retain", "mqtt.hdrflags",
                  "mqtt.conflags", "mqtt.conack.val", "mqtt.kalive", "mqtt.ver", "mqtt.clientid",
                  "mqtt.clientid_len", "mqtt.topic", "mqtt.topic_len"}


def rows(text):
    r = csv.reader(io.StringIO(text))
    head = next(r)
    return head, list(r)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("capture")
    ap.add_argument("--iomtguard", default="iomtguard", help="the iomtguard binary")
    ap.add_argument("--decode-as", action="append", default=[],
                    help="tshark -d value for MQTT on another port, e.g. tcp.port==2883,mqtt (repeatable)")
    ap.add_argument("--json", action="store_true", help="print a JSON report")
    a = ap.parse_args()
    cap, binary, as_json = a.capture, a.iomtguard, a.json
    extra = [x for d in a.decode_as for x in ("-d", d)]
    cmd = ["tshark", "-r", cap, "-T", "fields", "-E", "header=y", "-E", "separator=,", "-E", "quote=d",
           "-E", "occurrence=f"] + extra
    for f in FIELDS:
        cmd += ["-e", f]
    ts = subprocess.run(cmd, capture_output=True, text=True, errors="surrogateescape", check=True).stdout
    ours = subprocess.run([binary, "export", "--format", "icu-csv", "--payloads", "--reveal-credentials", "-q", cap], capture_output=True, text=True,
                          errors="surrogateescape", check=True).stdout
    _, trows = rows(ts)
    ohead, orows = rows(ours)
    report = {"capture": cap, "rows_tshark": len(trows), "rows_iomtguard": len(orows), "columns": {}}
    ok = len(trows) == len(orows) and ohead[:len(FIELDS)] == FIELDS
    report["header_equal"] = ohead[:len(FIELDS)] == FIELDS
    n = min(len(trows), len(orows))
    for ci, name in enumerate(FIELDS):
        oi = ci  # same order; the last two columns (class, label) are ours only
        agree = 0
        examples = []
        for i in range(n):
            a, b = trows[i][ci], orows[i][oi]
            same = a == b
            if not same and name in TIME and a and b:
                same = abs(float(a) - float(b)) <= 2e-6
            if same:
                agree += 1
            elif len(examples) < 3:
                examples.append({"frame": i + 1, "tshark": a[:60], "iomtguard": b[:60]})
        share = agree / n if n else 1.0
        report["columns"][name] = {"agree": share, "checked": name in CHECKED, "examples": examples}
        if name in CHECKED and share < 0.999:
            ok = False
    report["ok"] = ok
    if as_json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{cap}: {len(trows)} rows (tshark), {len(orows)} rows (iomtguard)")
        for name, c in report["columns"].items():
            mark = "*" if c["checked"] else " "
            line = f"  {mark} {name:24s} {100 * c['agree']:8.3f} %"
            if c["examples"]:
                line += "   e.g. " + "; ".join(f"#{e['frame']}: {e['tshark']!r} vs {e['iomtguard']!r}" for e in c["examples"][:2])
            print(line)
        print("  (* = named in the acceptance criterion)", "OK" if ok else "BELOW 99.9 %")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
