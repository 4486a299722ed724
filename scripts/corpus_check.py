#!/usr/bin/env python3
"""Checks iomtguard on a corpus made by scripts/corpus.sh: for every capture,
`analyze` exits 0 and writes valid JSON with every number defined; the MQTT
control packets by type equal tshark's (with the decode-as rules the corpus
lists, since tshark decodes MQTT on 1883 only); and a capture listed as benign
gets no attack or anomaly finding.

    python3 scripts/corpus_check.py --iomtguard bin/iomtguard DIR
"""
import argparse
import collections
import json
import os
import subprocess
import sys


def tshark_counts(path, decode_as):
    out = subprocess.run(["tshark", "-r", path, *decode_as, "-Y", "mqtt", "-T", "fields", "-e", "mqtt.msgtype"],
                         capture_output=True, text=True).stdout
    c = collections.Counter()
    for line in out.split():
        for v in line.split(","):
            if v:
                c[int(v)] += 1
    return c


def our_counts(tool, path):
    out = subprocess.run([tool, "export", "-q", "--format", "jsonl", path], capture_output=True, text=True).stdout
    return collections.Counter(json.loads(l)["msgtype"] for l in out.splitlines() if l)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iomtguard", default="bin/iomtguard")
    ap.add_argument("dir")
    a = ap.parse_args()
    d = a.dir
    benign = set(open(os.path.join(d, "benign.list")).read().split())
    rules = collections.defaultdict(list)
    for line in open(os.path.join(d, "decode-as")):
        name, *args = line.split()
        rules[name] += args
    files = sorted(f for f in os.listdir(d) if f.endswith((".pcap", ".pcapng", ".pcap.gz")))
    failed = 0
    print(f"{'capture':34} {'exit':>4} {'json':>5} {'MQTT':>6} {'ref':>6} {'equal':>5}  findings   (ref: tshark; for WebSocket the clients' own counts)")
    for f in files:
        path = os.path.join(d, f)
        base = f.split(".")[0]
        src = base.rsplit("-", 1)[0] if base.endswith(("-cut", "-garbled")) else base
        r = subprocess.run([a.iomtguard, "analyze", "-q", "--no-report", "--json", "-", path], capture_output=True, text=True)
        ok_json, findings, undefined = False, [], []
        try:
            res = json.loads(r.stdout)
            ok_json = True
            findings = [x["id"] for x in res["findings"]]
            undefined = [w for w in res["warnings"] if "not a finite number" in w]
        except Exception:
            pass
        ours = our_counts(a.iomtguard, path)
        ref = os.path.join(d, src + ".counts")
        if os.path.exists(ref):
            # MQTT inside WebSocket: tshark decodes none of it; the clients' own
            # count of what they sent and received is the reference.
            theirs = collections.Counter()
            for line in open(ref):
                k, v = line.split()
                theirs[int(k)] = int(v)
        else:
            theirs = tshark_counts(path, rules.get(src, []))
        equal = ours == theirs
        problems = []
        if r.returncode != 0:
            problems.append(f"exit {r.returncode}: {r.stderr.strip()[:200]}")
        if not ok_json:
            problems.append("invalid JSON")
        if undefined:
            problems.append("undefined numbers: " + "; ".join(undefined))
        if not equal:
            problems.append(f"MQTT by type {dict(sorted(ours.items()))} vs tshark {dict(sorted(theirs.items()))}")
        bad = [x for x in findings if x.startswith(("attack.", "anomaly."))]
        if base in benign and bad:
            problems.append("findings on a benign capture: " + ", ".join(bad))
        failed += bool(problems)
        print(f"{f:34} {r.returncode:>4} {'ok' if ok_json else 'BAD':>5} {sum(ours.values()):>6} {sum(theirs.values()):>6} {'yes' if equal else 'NO':>5}  "
              + (", ".join(findings) or "-"))
        for p in problems:
            print(f"    PROBLEM: {p}")
    print(f"\n{len(files) - failed} of {len(files)} captures pass")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
