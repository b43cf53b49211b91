#!/usr/bin/env bash
# Lighthouse (npm `lighthouse`, pinned in package.json) against a release Watchpost, signed in, on the
# dashboard: the mobile preset (simulated slow 4G, 4x CPU slowdown) in Debian's Chromium. Prints the
# performance score, time to interactive, total blocking time, first contentful paint and the bytes
# transferred, for each of RUNS runs (default 3), then the median.
#
#   scripts/build.sh
#   bench/lighthouse/run.sh            # RUNS=5 bench/lighthouse/run.sh for more
#
# The server gets a data directory of its own (removed after) with one admin and the end-to-end tests'
# commands, so the Controls panel has something to draw.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${RUNS:-3}
bin=target/release/watchpost
[ -x "$bin" ] || { echo "lighthouse: build first: scripts/build.sh" >&2; exit 1; }
[ -x node_modules/.bin/lighthouse ] || { echo "lighthouse: run scripts/setup.sh first (npm packages)" >&2; exit 1; }

data=$(mktemp -d /tmp/watchpost-lighthouse.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT

printf 'a lighthouse password\n' | WATCHPOST_DATA_DIR=$data "$bin" user add bench --role admin --password-stdin >/dev/null
WATCHPOST_DATA_DIR=$data LEPTOS_SITE_ROOT=target/site NO_COLOR=1 "$bin" --listen "127.0.0.1:$port" >"$data/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q 'listening on http://' "$data/server.log" && break; sleep 0.1; done
grep -q 'listening on http://' "$data/server.log" || { echo "lighthouse: the server did not start:" >&2; cat "$data/server.log" >&2; exit 1; }
url="http://127.0.0.1:$port"
cookie=$(curl -s -o /dev/null -D - -H 'content-type: application/json' \
  -d '{"name":"bench","password":"a lighthouse password"}' "$url/api/login" \
  | awk -F': ' 'tolower($1) == "set-cookie" { split($2, c, ";"); print c[1]; exit }')
[ -n "$cookie" ] || { echo "lighthouse: sign-in failed; the server said:" >&2; cat "$data/server.log" >&2; exit 1; }
# A few seconds of readings, so the page is what a person sees after a moment, not an empty start.
sleep 5

for i in $(seq "$runs"); do
  CHROME_PATH=${CHROMIUM_PATH:-/usr/bin/chromium} node_modules/.bin/lighthouse "$url/" --quiet \
    --only-categories=performance,accessibility,best-practices \
    --extra-headers="{\"Cookie\":\"$cookie\"}" \
    --chrome-flags="--headless=new --no-sandbox --disable-gpu" \
    --output=json --output-path="$data/run-$i.json" >/dev/null 2>"$data/lighthouse-$i.log" \
    || { cat "$data/lighthouse-$i.log" >&2; exit 1; }
done

node - "$data" "$runs" <<'JS'
const [dir, runs] = process.argv.slice(2);
const rows = [];
for (let i = 1; i <= Number(runs); i++) {
  const r = require(`${dir}/run-${i}.json`);
  if (r.runtimeError || r.categories.performance.score === null) {
    console.error(`run ${i}: Lighthouse could not score the page: ${JSON.stringify(r.runtimeError ?? r.runWarnings)}`);
    process.exit(1);
  }
  const a = (id) => r.audits[id]?.numericValue;
  rows.push({
    performance: r.categories.performance.score,
    accessibility: r.categories.accessibility.score,
    bestPractices: r.categories['best-practices'].score,
    tti: a('interactive'), tbt: a('total-blocking-time'), fcp: a('first-contentful-paint'),
    lcp: a('largest-contentful-paint'), bytes: a('total-byte-weight'),
  });
}
const fmt = (r) => `performance ${r.performance.toFixed(2)}  TTI ${(r.tti / 1000).toFixed(1)} s  TBT ${Math.round(r.tbt)} ms  ` +
  `FCP ${(r.fcp / 1000).toFixed(1)} s  LCP ${(r.lcp / 1000).toFixed(1)} s  ${(r.bytes / 1024).toFixed(0)} KiB transferred  ` +
  `accessibility ${r.accessibility.toFixed(2)}  best practices ${r.bestPractices.toFixed(2)}`;
rows.forEach((r, i) => console.log(`run ${i + 1}: ${fmt(r)}`));
const median = (k) => {
  const v = rows.map((r) => r[k]).sort((x, y) => x - y);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
};
const m = Object.fromEntries(Object.keys(rows[0]).map((k) => [k, median(k)]));
console.log(`median: ${fmt(m)}`);
JS
