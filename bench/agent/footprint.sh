#!/usr/bin/env bash
# What watchpost-agent costs the host it watches: CPU (% of one core) and resident memory while it samples
# every second and pushes to a hub, measured from /proc over a steady stretch after a warm-up.
#
#   bench/agent/footprint.sh [SECONDS]      (default 120; after scripts/build.sh, which builds both binaries)
#
# Starts a release hub on a free port with a throw-away data directory, adds a host with the real CLI, runs
# the release agent against it, and prints the agent's figures and its stripped binary size.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-120}
hub=target/release/watchpost
agent=target/release/watchpost-agent
[ -x "$hub" ] && [ -x "$agent" ] || { echo "build first: scripts/build.sh" >&2; exit 1; }

data=$(mktemp -d)
spool=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() { kill "${agent_pid:-}" "${hub_pid:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data" "$spool"; }
trap cleanup EXIT

WATCHPOST_DATA_DIR=$data "$hub" token add bench-1 --role agent --environment bench > "$data/token" 2>/dev/null
WATCHPOST_DATA_DIR=$data LEPTOS_SITE_ROOT=target/site "$hub" --listen "127.0.0.1:$port" > "$data/hub.log" 2>&1 &
hub_pid=$!
for _ in $(seq 50); do grep -q "listening on" "$data/hub.log" && break; sleep 0.2; done
RUST_LOG=warn "$agent" --hub "http://127.0.0.1:$port" --token-file "$data/token" --name bench-1 \
  --environment bench --interval 1s --spool-dir "$spool" 2> "$data/agent.log" &
agent_pid=$!

ticks=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' "/proc/$agent_pid/stat"; }
sleep 10 # warm-up: the first readings, the connection set up
c0=$(cpu); t0=$(date +%s.%N)
sleep "$secs"
c1=$(cpu); t1=$(date +%s.%N)
rss_kib=$(awk '/^VmRSS/ { print $2 }' "/proc/$agent_pid/status")
hwm_kib=$(awk '/^VmHWM/ { print $2 }' "/proc/$agent_pid/status")
stripped=$(mktemp); cp "$agent" "$stripped"; strip "$stripped"; size=$(stat -c %s "$stripped"); rm -f "$stripped"
awk -v c0="$c0" -v c1="$c1" -v t0="$t0" -v t1="$t1" -v hz="$ticks" -v rss="$rss_kib" -v hwm="$hwm_kib" \
    -v size="$size" -v secs="$secs" 'BEGIN {
  printf "watchpost-agent, 1 s interval, %d s measured after a 10 s warm-up\n", secs
  printf "  CPU:      %.3f %% of one core\n", (c1 - c0) / hz / (t1 - t0) * 100
  printf "  RSS:      %.1f MiB now, %.1f MiB peak\n", rss / 1024, hwm / 1024
  printf "  binary:   %.2f MB stripped\n", size / 1e6
}'
grep -q . "$data/agent.log" && { echo "agent log:"; cat "$data/agent.log"; } || true
