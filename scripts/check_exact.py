#!/usr/bin/env python3
"""Checks analyze's Figure 1 quartiles against pandas' describe() of tshark's
field export of the same capture, with and without --exact.

Usage: scripts/check_exact.py [--iomtguard BIN] CAPTURE

A capture of more than about 2 million frames puts the time columns past
their cap: without --exact their quartiles come from a sketch and are
flagged ("exact": false); with --exact they must equal pandas'. Prints one
line per column and quartile, then the number of differences (exit 1 when
--exact differs from pandas or claims exactness wrongly)."""
import argparse, json, subprocess, sys, tempfile, os
import pandas as pd

FIELDS = ["frame.time_delta", "frame.time_relative", "frame.len", "tcp.srcport",
          "tcp.dstport", "tcp.time_delta", "tcp.len", "tcp.ack"]

ap = argparse.ArgumentParser()
ap.add_argument("--iomtguard", default="bin/iomtguard")
ap.add_argument("capture")
a = ap.parse_args()
with tempfile.TemporaryDirectory() as tmp:
    csv = os.path.join(tmp, "fields.csv")
    with open(csv, "w") as out:
        subprocess.run(["tshark", "-r", a.capture, "-T", "fields", "-E", "header=y", "-E", "separator=,"]
                       + sum([["-e", f] for f in FIELDS], []), stdout=out, stderr=subprocess.DEVNULL, check=True)
    runs = {}
    for name, extra in (("exact", ["--exact"]), ("default", [])):
        js = os.path.join(tmp, name + ".json")
        subprocess.run([a.iomtguard, "analyze", "-q", "--no-report", "--json", js] + extra + [a.capture], check=True)
        runs[name] = json.load(open(js))["describe"]
    d = pd.read_csv(csv).describe()


def equal(p, x):
    """x is pandas' quartile p (to the last digits of a float)."""
    return p == x or abs(p - x) <= 1e-12 * max(1.0, abs(p))


bad = 0
for c in FIELDS:
    for q in ("25%", "50%", "75%"):
        p, e, s = float(d[c][q]), runs["exact"][c][q], runs["default"][c][q]
        same = equal(p, e)
        if not same or not runs["exact"][c]["exact"]:
            bad += 1
        # Without --exact, a quartile that says it is exact must be.
        if runs["default"][c]["exact"] and not equal(p, s):
            bad += 1
            print(f"{c} {q}: default run claims exactness: {s!r} against pandas {p!r}")
        print(f"{c:20s} {q:4s} pandas {p!r:>18}  --exact {e!r:>18} {'=' if same else 'DIFFERS'}"
              f"   default {s!r:>18} ({'exact' if runs['default'][c]['exact'] else 'sketch, flagged'})")
print(f"{int(d['frame.len']['count'])} frames; {bad} quartiles differ from pandas (with --exact, or without it where it says exact)")
sys.exit(1 if bad else 0)
