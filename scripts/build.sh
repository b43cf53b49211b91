#!/usr/bin/env bash
# The release build a user runs: server and WASM (cargo-leptos), then a brotli and a gzip -9 copy of every
# static file beside it (scripts/precompress.mjs), which the server sends to browsers that accept them, and
# watchpost-agent (target/release/watchpost-agent), for other hosts. Beside cargo-leptos's build of the whole
# app it makes the dashboard's own (scripts/dashboard-build.sh), which the server sends with `/`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo leptos build --release
scripts/dashboard-build.sh
node scripts/precompress.mjs target/site
cargo build --release -p agent
