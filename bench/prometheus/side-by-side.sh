#!/usr/bin/env bash
# A real Prometheus (Debian's 2.42) and a release Watchpost side by side, each scraping one Kong-style target
# (a latency histogram in ms whose counts change every 10 s) and Prometheus also scraping Watchpost's
# /metrics with a viewer token. Then `compare.py DIR RANGE` asks both for the same quantiles.
#   bench/prometheus/side-by-side.sh DIR      start (Watchpost on 127.0.0.1:13000, Prometheus on :19090)
#   bench/prometheus/side-by-side.sh DIR stop
set -euo pipefail
cd "$(dirname "$0")/../.."
D=${1:?a working directory}
if [ "${2:-}" = stop ]; then
  for p in "$D"/*.pid; do kill "$(cat "$p")" 2>/dev/null || true; done
  exit 0
fi
mkdir -p "$D/target"
export WATCHPOST_DATA_DIR=$D/data
target/release/watchpost token add prometheus --role viewer | grep -o 'wpt_[A-Za-z0-9_-]*' | head -1 > "$D/token"
python3 bench/prometheus/target.py "$D/target/metrics" & echo $! > "$D/target-gen.pid"
(cd "$D/target" && exec python3 -m http.server 18081 --bind 127.0.0.1 >/dev/null 2>&1) & echo $! > "$D/target-http.pid"
cat > "$D/prometheus.yml" <<YML
global: {scrape_interval: 10s}
scrape_configs:
  - job_name: watchpost
    authorization: {credentials_file: $D/token}
    static_configs: [{targets: ['127.0.0.1:13000']}]
  - job_name: kong
    static_configs: [{targets: ['127.0.0.1:18081']}]
YML
prometheus --config.file="$D/prometheus.yml" --storage.tsdb.path="$D/tsdb" \
  --web.listen-address=127.0.0.1:19090 >"$D/prometheus.log" 2>&1 & echo $! > "$D/prometheus.pid"
LEPTOS_SITE_ROOT=target/site target/release/watchpost --listen 127.0.0.1:13000 \
  --scrape kong=http://127.0.0.1:18081/metrics >"$D/watchpost.log" 2>&1 & echo $! > "$D/watchpost.pid"
echo "started; after a few minutes: python3 bench/prometheus/compare.py $D 1h (or 24h)"
