#!/usr/bin/env python3
"""Times iomtguard's numerics beside the Python reference, in one run.

1. Automatic ARIMA on a 6,611-point per-second series (the span of the seed's data): the first
   6,611 seconds of packets per second of the 1.09M-frame benchmark capture. statsmodels fits
   the same grid iomtguard searches (p, q <= 5 at the d that KPSS chooses); iomtguard runs
   `iomtguard forecast --series` as a whole process.
2. k-means, k = 3, n_init = 10, on 1M two-dimensional points (three Gaussian blobs, numpy seed
   1): scikit-learn's KMeans(3, n_init=10).fit against BenchmarkKMeans1M on the same points.

Usage (repository root): /usr/bin/python3 scripts/bench_numerics.py [--runs N]
Needs ../shared (for the capture), Go, and Debian's python3-sklearn and python3-statsmodels.
Reports medians of N runs (default 3) and the ratios.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from sklearn.cluster import KMeans
from statsmodels.tsa.arima.model import ARIMA
from statsmodels.tsa.stattools import kpss

warnings.filterwarnings("ignore")
ap = argparse.ArgumentParser()
ap.add_argument("--runs", type=int, default=3)
ap.add_argument("--dir", default=os.environ.get("BENCH_DIR", "/tmp/iomtguard-bench"))
args = ap.parse_args()
os.makedirs(args.dir, exist_ok=True)
exe = os.path.join(args.dir, "iomtguard")
subprocess.run(["go", "build", "-o", exe, "./cmd/iomtguard"], check=True, env=dict(os.environ, CGO_ENABLED="0"))
big = os.path.join(args.dir, "big-benign.pcap")
if not os.path.exists(big):
    subprocess.run(["/usr/bin/python3", "../shared/tools/replicate_pcap.py", "../shared/data/captures/benign.pcap", big,
                    "100", "600"], check=True)

# --- the series ---------------------------------------------------------------------------
full = os.path.join(args.dir, "per-second-full.csv")
subprocess.run([exe, "forecast", big, "--interval", "1s", "--order", "0,0,0", "--horizon", "1", "-q",
                "--save-series", full, "--json"], check=True, stdout=subprocess.DEVNULL)
lines = open(full).read().splitlines()[: 6611 + 1]
series = os.path.join(args.dir, "per-second-6611.csv")
open(series, "w").write("\n".join(lines) + "\n")
y = np.array([float(l.split(",")[1]) for l in lines[1:]])
assert len(y) == 6611

# d as KPSS chooses it (the same rule iomtguard applies).
d = 0
while d < 2:
    w = np.diff(y, n=d) if d else y
    if kpss(w, regression="c", nlags="auto")[1] >= 0.05:
        break
    d += 1


def statsmodels_grid():
    best = None
    t0 = time.time()
    for p in range(6):
        for q in range(6):
            try:
                r = ARIMA(y, order=(p, d, q)).fit()
            except Exception:
                continue
            if best is None or r.aicc < best[0]:
                best = (r.aicc, (p, d, q))
    return time.time() - t0, best


def iomtguard_auto():
    t0 = time.time()
    out = subprocess.run([exe, "forecast", "--series", series, "--json"], check=True, capture_output=True, text=True).stdout
    secs = time.time() - t0
    j = json.loads(out)
    return secs, (j["aicc"], tuple(j["order"]))


sm = [statsmodels_grid() for _ in range(args.runs)]
ig = [iomtguard_auto() for _ in range(args.runs)]
sm_t = statistics.median(t for t, _ in sm)
ig_t = statistics.median(t for t, _ in ig)
print(f"ARIMA order selection on {len(y)} points (d = {d} by KPSS, p, q <= 5: 36 orders), median of {args.runs}:")
print(f"  statsmodels 0.13 grid   {sm_t:8.2f} s   best ARIMA{sm[0][1][1]} AICc {sm[0][1][0]:.3f}")
print(f"  iomtguard forecast      {ig_t:8.2f} s   best ARIMA{ig[0][1][1]} AICc {ig[0][1][0]:.3f}")
print(f"  speed-up {sm_t / ig_t:.1f}x; AICc {'no worse' if ig[0][1][0] <= sm[0][1][0] + 1e-6 else 'WORSE'} than statsmodels' best")

# --- k-means --------------------------------------------------------------------------------
r = np.random.default_rng(1)
c = r.integers(0, 3, 1_000_000) * 4.0
X = np.column_stack([c + r.normal(size=1_000_000), c / 2 + r.normal(size=1_000_000)])
pts = os.path.join(args.dir, "kmeans-1m.f64")
X.astype("<f8").tofile(pts)
sk = []
for _ in range(args.runs):
    t0 = time.time()
    km = KMeans(n_clusters=3, n_init=10, random_state=0).fit(X)
    sk.append((time.time() - t0, km.inertia_))
out = subprocess.run(["go", "test", "./internal/cluster", "-run", "xxx", "-bench", "KMeans1M", "-benchtime", "1x",
                      "-count", str(args.runs)], check=True, capture_output=True, text=True,
                     env=dict(os.environ, IOMTGUARD_KMEANS_POINTS=pts)).stdout
go = [(int(m.group(1)) / 1e9, float(m.group(2))) for m in re.finditer(r"BenchmarkKMeans1M\S*\s+\d+\s+(\d+) ns/op\s+(\S+) inertia", out)]
sk_t = statistics.median(t for t, _ in sk)
go_t = statistics.median(t for t, _ in go)
print(f"k-means, k = 3, n_init = 10, on 1,000,000 2-D points, median of {args.runs}:")
print(f"  scikit-learn 1.2        {sk_t:8.2f} s   inertia {sk[0][1]:.1f}")
print(f"  iomtguard cluster       {go_t:8.2f} s   inertia {go[0][1]:.1f}")
print(f"  iomtguard/scikit-learn time ratio {go_t / sk_t:.2f} (below 1: faster)")
