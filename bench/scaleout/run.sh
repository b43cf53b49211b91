#!/usr/bin/env bash
# Scale-out's fan-out: three instances on one PostgreSQL database and one JetStream stream, CLIENTS stream
# clients spread over them, against one instance with the in-process bus holding as many clients, in one
# run. Each instance samples its host once a second (one health event per instance per second, carried to
# every client of every instance). Prints each `watchpost-bench clients` report: delivery p50/p99 (from an
# event's publication on one instance to its arrival at a client of any), and each instance's CPU.
#
#   cargo build --release -p server -p watchpost-bench && bench/scaleout/run.sh [CLIENTS] [SECONDS]
#
# Needs the machine's PostgreSQL (127.0.0.1:5432, trust) and NATS with JetStream (127.0.0.1:4222); the
# database and stream it makes are removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
CLIENTS=${1:-3000}
SECONDS_=${2:-20}
BIN=target/release/watchpost
BENCH=target/release/watchpost-bench
RUN=$$
DB=watchpost_bench_$RUN
STREAM=wp_bench_$RUN
STORE=postgres://postgres@127.0.0.1:5432/$DB
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
  python3 - "$STREAM" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", 4222)); s.recv(4096)
for name in (sys.argv[1], "KV_" + sys.argv[1] + "_leases"):
    s.sendall(b'CONNECT {"verbose":false}\r\nPUB $JS.API.STREAM.DELETE.' + name.encode() + b' 0\r\n\r\n')
s.sendall(b"PING\r\n"); time.sleep(0.3)
PY
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

wait_up() { for _ in $(seq 200); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null && return; sleep 0.1; done; echo "no instance on $1" >&2; exit 1; }

echo "== three instances, --bus nats (JetStream) and --store postgres, $CLIENTS clients over them, ${SECONDS_}s"
psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $DB" >/dev/null
export WATCHPOST_TOKEN=$($BIN --store "$STORE" --data-dir "$WORK/cli" token add bench --role operator)
INSTANCE_PIDS=()
for n in 1 2 3; do
  $BIN --listen 127.0.0.1:391$n --data-dir "$WORK/i$n" --store "$STORE" --bus nats://127.0.0.1:4222 \
    --bus-stream "$STREAM" --max-streams-per-user 1000 --max-connections 60000 >"$WORK/i$n.log" 2>&1 &
  PIDS+=($!); INSTANCE_PIDS+=($!)
  wait_up 391$n
done
BENCH_PIDS=()
for n in 1 2 3; do
  $BENCH clients --url http://127.0.0.1:391$n --clients $((CLIENTS / 3)) --seconds "$SECONDS_" \
    --pid "${INSTANCE_PIDS[$((n - 1))]}" >"$WORK/b$n.txt" 2>&1 &
  BENCH_PIDS+=($!)
done
for p in "${BENCH_PIDS[@]}"; do wait "$p"; done
for n in 1 2 3; do echo "-- instance $n"; cat "$WORK/b$n.txt"; done
for p in "${INSTANCE_PIDS[@]}"; do kill "$p"; done

echo "== one instance, in-process bus, embedded store, $CLIENTS clients, ${SECONDS_}s"
export WATCHPOST_TOKEN=$($BIN --data-dir "$WORK/local" token add bench --role operator)
$BIN --listen 127.0.0.1:3914 --data-dir "$WORK/local" --max-streams-per-user 1000 \
  --max-connections 60000 >"$WORK/local.log" 2>&1 &
PIDS+=($!)
wait_up 3914
$BENCH clients --url http://127.0.0.1:3914 --clients "$CLIENTS" --seconds "$SECONDS_" --pid "${PIDS[-1]}"
