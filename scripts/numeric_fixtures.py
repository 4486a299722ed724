#!/usr/bin/env python3
"""Reference numbers for iomtguard's numerics, from the Python stack the seed study used.

Writes testdata/numeric/{describe,kmeans,arima,tests}.json. Run from the repository root with
Debian 12's python3-pandas (1.5), python3-sklearn (1.2) and python3-statsmodels (0.13):

    /usr/bin/python3 scripts/numeric_fixtures.py

Every series and dataset is generated here from a fixed seed (or read from a committed capture's
tshark export), so the fixtures can be regenerated and checked.
"""
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd
import sklearn
import statsmodels
from sklearn.cluster import KMeans
from statsmodels.stats.diagnostic import acorr_ljungbox
from statsmodels.tsa.arima.model import ARIMA
from statsmodels.tsa.stattools import kpss

warnings.filterwarnings("ignore")
OUT = "testdata/numeric"
os.makedirs(OUT, exist_ok=True)
VERSIONS = {"numpy": np.__version__, "pandas": pd.__version__, "sklearn": sklearn.__version__,
            "statsmodels": statsmodels.__version__}


def dump(name, obj):
    obj["versions"] = VERSIONS
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f, indent=None, separators=(",", ":"), allow_nan=False)
    print("wrote", name, file=sys.stderr)


def tshark_columns(capture, fields):
    cmd = ["tshark", "-r", capture, "-T", "fields", "-E", "header=y", "-E", "separator=,", "-E", "quote=d",
           "-E", "occurrence=f"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    import io
    return pd.read_csv(io.StringIO(out))


# --- describe -------------------------------------------------------------------------------
FIG1 = ["frame.time_delta", "frame.time_relative", "frame.len", "tcp.srcport", "tcp.dstport",
        "tcp.time_delta", "tcp.len", "tcp.ack"]
rng = np.random.default_rng(20261128)
columns = {
    "normal": rng.normal(1000.0, 3.0, 5001).tolist(),
    "ties": rng.integers(0, 7, 2000).astype(float).tolist(),
    "with_nan": [float("nan") if i % 7 == 0 else v for i, v in enumerate(rng.exponential(2.0, 999))],
    "offset": (1.7e9 + np.cumsum(rng.exponential(0.01, 3000))).tolist(),
    "tiny": [0.000001, 0.000002, 0.000004],
    "single": [42.0],
    "negative": (-rng.pareto(2.0, 1500) * 100).tolist(),
    "ports": rng.integers(1024, 65535, 4000).astype(float).tolist(),
}
describe = {"synthetic": {}, "captures": {}}
for name, vals in columns.items():
    d = pd.Series(vals, dtype=float).describe()
    describe["synthetic"][name] = {"values": [None if v != v else v for v in vals], "describe": {k: (None if pd.isna(v) else float(v)) for k, v in d.items()}}
for cap in sorted(os.listdir("testdata/captures")):
    df = tshark_columns(os.path.join("testdata/captures", cap), FIG1)
    if len(df) < 5:
        continue
    describe["captures"][cap] = {c: {k: (None if pd.isna(v) else float(v)) for k, v in df[c].describe().items()} for c in FIG1}
shared = "../shared/data/captures"
describe["shared"] = {}
if os.path.isdir(shared):
    for cap in sorted(os.listdir(shared)):
        if not cap.endswith((".pcap", ".pcapng")):
            continue
        df = tshark_columns(os.path.join(shared, cap), FIG1)
        describe["shared"][cap] = {c: {k: (None if pd.isna(v) else float(v)) for k, v in df[c].describe().items()} for c in FIG1}
dump("describe.json", describe)

# --- k-means --------------------------------------------------------------------------------
def blobs(seed, n, centers, scale):
    r = np.random.default_rng(seed)
    lab = r.integers(0, len(centers), n)
    return (np.array(centers)[lab] + r.normal(0, scale, (n, 2))).astype(float)


kcases = []
X1 = blobs(1, 3000, [[0, 0], [5, 5], [0, 6]], 1.0)
X2 = blobs(2, 2500, [[0, 0], [3, 0], [0, 3], [3, 3], [1.5, 1.5]], 0.9)
X3 = np.column_stack([np.r_[np.full(800, 70.0), np.full(150, 105.0), np.full(40, 1500.0), np.full(10, 68.0)],
                      np.r_[np.full(800, 2.0), np.full(150, 37.0), np.full(40, 1432.0), np.full(10, 0.0)]])
W3 = np.r_[np.full(800, 3.0), np.full(150, 1.0), np.full(40, 2.0), np.full(10, 5.0)]
for name, X, k, init_idx, w in [("blobs3", X1, 3, [0, 1, 2], None), ("blobs5", X2, 5, [10, 20, 30, 40, 50], None),
                                ("blobs3-far-init", X1, 3, [5, 6, 7], None),
                                ("lengths-weighted", X3, 3, [0, 800, 990], W3)]:
    init = X[init_idx]
    km = KMeans(n_clusters=k, init=init, n_init=1, random_state=0).fit(X, sample_weight=w)
    kcases.append({"name": name, "X": X.ravel().tolist(), "d": 2, "weights": None if w is None else w.tolist(), "k": k,
                   "init": init.tolist(), "labels": km.labels_.tolist(), "inertia": float(km.inertia_),
                   "n_iter": int(km.n_iter_), "centers": km.cluster_centers_.tolist()})
kpp = []
for name, X, k in [("blobs3", X1, 3), ("blobs5", X2, 5)]:
    km = KMeans(n_clusters=k, n_init=10, random_state=0).fit(X)
    kpp.append({"name": name, "X": X.ravel().tolist(), "d": 2, "k": k, "inertia": float(km.inertia_)})
dump("kmeans.json", {"fixed_init": kcases, "plusplus": kpp})

# --- ARIMA ----------------------------------------------------------------------------------
def arma(seed, n, ar, ma, mu=0.0, sd=1.0, burn=200):
    r = np.random.default_rng(seed)
    e = r.normal(0, sd, n + burn)
    y = np.zeros(n + burn)
    for t in range(n + burn):
        v = e[t]
        for i, a in enumerate(ar):
            if t - 1 - i >= 0:
                v += a * y[t - 1 - i]
        for j, m in enumerate(ma):
            if t - 1 - j >= 0:
                v += m * e[t - 1 - j]
        y[t] = v
    return (y[burn:] + mu).tolist()


def per_second(capture):
    df = tshark_columns(capture, ["frame.time_relative"])
    sec = np.floor(df["frame.time_relative"].to_numpy(float)).astype(int)
    return np.bincount(sec).astype(float).tolist()


series = {
    "ar1": (arma(11, 400, [0.7], [], mu=10.0), [(1, 0, 0), (2, 0, 1)]),
    "ar2": (arma(12, 500, [0.5, -0.3], [], mu=-3.0, sd=2.0), [(2, 0, 0), (1, 0, 1)]),
    "ma1": (arma(13, 300, [], [0.6], mu=1.0), [(0, 0, 1), (1, 0, 1)]),
    "ma2": (arma(14, 350, [], [0.4, 0.3]), [(0, 0, 2), (2, 0, 2)]),
    "arma11": (arma(15, 600, [0.6], [0.3], mu=5.0), [(1, 0, 1), (3, 0, 2)]),
    "arma21": (arma(16, 450, [1.1, -0.4], [-0.5], mu=0.0, sd=0.5), [(2, 0, 1)]),
    "drift": (np.cumsum(np.array(arma(17, 400, [0.3], [], sd=1.0)) + 0.5).tolist(), [(0, 1, 1), (1, 1, 0), (1, 1, 1)]),
    "level-bytes": (np.cumsum(np.array(arma(18, 300, [0.2], [0.2], sd=300.0)) + 20.0).tolist() , [(1, 1, 1)]),
    "d2": (np.cumsum(np.cumsum(arma(19, 250, [], [0.4], sd=0.3))).tolist(), [(0, 2, 1)]),
    "outliers": (None, [(1, 0, 1), (2, 0, 0)]),
    "sine": ((10 + 3 * np.sin(np.arange(500) * 2 * np.pi / 24) + np.random.default_rng(20).normal(0, 0.5, 500)).tolist(), [(2, 0, 2), (3, 0, 1)]),
}
o = np.array(arma(21, 400, [0.5], [], mu=20.0, sd=1.0))
o[[50, 51, 200, 333]] += [12, -9, 15, 20]
series["outliers"] = (o.tolist(), series["outliers"][1])
for cap in ["ack-ahead.pcap"]:
    pass
if os.path.isdir(shared):
    series["benign-per-second"] = (per_second(os.path.join(shared, "benign.pcap")), [(1, 0, 1), (2, 0, 2), (1, 1, 1)])
    series["bruteforce-per-second"] = (per_second(os.path.join(shared, "bruteforce.pcapng")), [(1, 0, 1), (0, 1, 1)])

arima = {"cases": [], "grids": [], "kpss": [], "ljungbox": []}
for name, (y, orders) in series.items():
    y = np.asarray(y, float)
    for order in orders:
        t0 = time.time()
        r = ARIMA(y, order=order).fit()
        secs = time.time() - t0
        fc = r.get_forecast(10)
        ci = fc.conf_int(alpha=0.05)
        arima["cases"].append({"series": name, "order": list(order), "llf": float(r.llf),
                               "params": dict(zip(r.param_names, map(float, r.params))),
                               "aic": float(r.aic), "aicc": float(r.aicc), "bic": float(r.bic),
                               "converged": bool(r.mle_retvals.get("converged", True)),
                               "forecast": {"mean": list(map(float, fc.predicted_mean)),
                                            "lower": list(map(float, ci[:, 0])), "upper": list(map(float, ci[:, 1]))},
                               "seconds": secs})
    stat, p, lags, _ = kpss(y, regression="c", nlags="auto")
    arima["kpss"].append({"series": name, "stat": float(stat), "pvalue": float(p), "lags": int(lags)})
    stat1, p1, lags1, _ = kpss(np.diff(y), regression="c", nlags="auto")
    arima["kpss"].append({"series": name + "/diff1", "stat": float(stat1), "pvalue": float(p1), "lags": int(lags1)})
arima["series"] = {k: list(map(float, v[0])) for k, v in series.items()}
# Grids for order selection: best AICc over p, q <= 5 for a fixed d, as statsmodels fits them.
for name, d in [("arma11", 0), ("drift", 1)] + ([("benign-per-second", 0)] if "benign-per-second" in series else []):
    y = np.asarray(series[name][0], float)
    best = None
    t0 = time.time()
    for p in range(6):
        for q in range(6):
            try:
                r = ARIMA(y, order=(p, d, q)).fit()
            except Exception:
                continue
            if best is None or r.aicc < best[0]:
                best = (float(r.aicc), [p, d, q])
    arima["grids"].append({"series": name, "d": d, "best_aicc": best[0], "best_order": best[1], "seconds": time.time() - t0})
# Ljung-Box on residuals of one model (statsmodels drops nothing; we compare on t >= d).
y = np.asarray(series["arma11"][0], float)
r = ARIMA(y, order=(1, 0, 1)).fit()
lb = acorr_ljungbox(r.resid, lags=[10], model_df=2)
arima["ljungbox"].append({"series": "arma11", "order": [1, 0, 1], "lags": 10, "model_df": 2,
                          "stat": float(lb["lb_stat"].iloc[0]), "pvalue": float(lb["lb_pvalue"].iloc[0])})
dump("arima.json", arima)
