#!/usr/bin/env bash
# Builds Watchpost in release mode and runs the dashboard on http://127.0.0.1:3000 (the embedded default).
# Extra arguments go to the server, e.g. `scripts/run.sh --listen 0.0.0.0:8080 --interval 2s`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
export LEPTOS_SITE_ROOT=target/site
exec target/release/watchpost "$@"
