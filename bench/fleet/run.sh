#!/usr/bin/env bash
# The fleet under load, on this machine: a release hub of its own (data directory removed after), AGENTS
# simulated agents (default 200) pushing a real reading each INTERVAL (1s) over HTTP, VIEWERS stream clients
# (default 1000) on the event stream, and — meanwhile — the Hosts page open in Debian's Chromium, its frames
# timed for 10 s inside the WINDOW. Prints the hub's CPU and RSS per agent, push latency, the viewers' delivery figures
# (`watchpost-bench agents`), then the page's frame rate, its slowest frames and its long tasks
# (`bench/fleet/hosts-page.mjs`). Figures only; nothing is asserted.
#
#   scripts/build.sh && cargo build --release -p watchpost-bench
#   bench/fleet/run.sh                       # AGENTS=200 VIEWERS=1000 WINDOW=30 (s) INTERVAL=1s
set -euo pipefail
cd "$(dirname "$0")/../.."
agents=${AGENTS:-200}
viewers=${VIEWERS:-1000}
seconds=${WINDOW:-30}
interval=${INTERVAL:-1s}
bin=target/release/watchpost
bench=target/release/watchpost-bench
[ -x "$bin" ] || { echo "fleet bench: build first: scripts/build.sh" >&2; exit 1; }
[ -x "$bench" ] || { echo "fleet bench: cargo build --release -p watchpost-bench first" >&2; exit 1; }

data=$(mktemp -d /tmp/watchpost-fleet-bench.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$data"; }
trap cleanup EXIT

printf 'a fleet bench password\n' | WATCHPOST_DATA_DIR=$data "$bin" user add bench --role admin --password-stdin >/dev/null
token=$(WATCHPOST_DATA_DIR=$data "$bin" token add bench --role admin 2>/dev/null)
ulimit -n 65536 2>/dev/null || true
WATCHPOST_DATA_DIR=$data LEPTOS_SITE_ROOT=target/site NO_COLOR=1 WATCHPOST_MAX_STREAMS_PER_USER=1000 \
  "$bin" --listen "127.0.0.1:$port" >"$data/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do grep -q 'listening on http://' "$data/server.log" && break; sleep 0.1; done
grep -q 'listening on http://' "$data/server.log" || { echo "fleet bench: the server did not start:" >&2; cat "$data/server.log" >&2; exit 1; }
url="http://127.0.0.1:$port"

# The page is opened once every agent has been pushing for a while, and timed inside the window of the agents
# alone (before the viewers connect). The bench starts half the agents for a warm-up of five intervals and a
# window first, then the rest for another warm-up and window: the page opens two seconds into that window.
interval_s=1
case "$interval" in *ms) ;; *s) interval_s=${interval%s} ;; esac
(
  sleep $((10 * interval_s + seconds + 2))
  CHROMIUM_PATH=${CHROMIUM_PATH:-/usr/bin/chromium} node bench/fleet/hosts-page.mjs "$url" bench 'a fleet bench password' 10 "$agents"
) &
page=$!
WATCHPOST_TOKEN=$token "$bench" agents --url "$url" --agents "$agents" --interval "$interval" \
  --seconds "$seconds" --viewers "$viewers" --pid "$server"
wait "$page"
