"""Watchpost's chart points for the `kong` service over a range (1h: one point per 10-s interval; 24h: two-minute
points pooling twelve intervals), each against Prometheus's histogram_quantile over the same window, computed
from the bucket increments between its own samples. The two scrape the target at different moments of its 10-s
period, so Prometheus is asked a few seconds later than Watchpost's timestamp: the shift that matches most
points is used, and said.

    python3 bench/prometheus/compare.py DIR RANGE     (DIR as given to side-by-side.sh; RANGE 1h or 24h)
"""
import json, statistics, sys, urllib.parse, urllib.request

directory, rng = sys.argv[1], sys.argv[2]
token = open(f"{directory}/token").read().strip()
BUCKET = "kong_request_latency_ms_bucket"


def watchpost(path):
    request = urllib.request.Request("http://127.0.0.1:13000" + path, headers={"Authorization": "Bearer " + token})
    return json.load(urllib.request.urlopen(request))


def prometheus(query, t):
    url = "http://127.0.0.1:19090/api/v1/query?" + urllib.parse.urlencode({"query": query, "time": t})
    result = json.load(urllib.request.urlopen(url))["data"]["result"]
    value = float(result[0]["value"][1]) if result else None
    return None if value is None or value != value else value


for q, metric in [(0.5, "http_p50_ms"), (0.95, "http_p95_ms"), (0.99, "http_p99_ms")]:
    series = watchpost(f"/api/history?metric={metric}&service=kong&range={rng}")
    step = series["step_ms"] // 1000
    points = series["points"][1:-1]  # the first and last may be partial windows
    best = None
    for shift in range(0, 10):
        pairs = []
        for p in points:
            window = step if p["count"] > 1 else 10
            end = p["t_ms"] // 1000 + (step if p["count"] > 1 else 0)
            v = prometheus(f"histogram_quantile({q}, sum by (le)({BUCKET} - {BUCKET} offset {window}s))", end + shift)
            if v is not None:
                pairs.append((p["avg"], v, p["count"]))
        exact = sum(1 for w, v, _ in pairs if abs(w - v) < 0.01)
        if best is None or exact > best[0]:
            best = (exact, shift, pairs)
    exact, shift, pairs = best
    diffs = [abs(w - v) for w, v, _ in pairs]
    print(
        f"{rng} {metric}: {series['tier']} tier, {step}-s points pooling {max((c for *_, c in pairs), default=0)} "
        f"intervals; {len(pairs)} points, {exact} equal to Prometheus within 0.01 ms "
        f"(|difference| median {statistics.median(diffs):.2f} ms, max {max(diffs):.2f} ms; Prometheus asked {shift} s later)"
        if pairs else f"{rng} {metric}: no points yet"
    )
