#!/usr/bin/env bash
# Installs what building and testing Watchpost needs, each step skipped quickly when already done.
#   scripts/setup.sh            toolchain for building and running
#   scripts/setup.sh --browser  also what the tests need: Debian's Chromium for the end-to-end tests,
#                               Debian's prometheus package for its promtool (a test checks /metrics with it),
#                               and Debian's haproxy (the scale-out convergence test balances over it)
# Nothing here downloads a prebuilt binary from outside crates.io, npm, Debian or rustup.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_LEPTOS_VERSION=0.3.10 # 0.3.11 needs rustc 1.96 (a locked dependency)
# cargo-leptos runs the wasm-bindgen CLI, which must match the library in Cargo.lock exactly.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)

say() { printf '==> %s\n' "$*"; }

if ! command -v cargo >/dev/null; then
  echo "setup: cargo is missing; install Rust with rustup first (https://rustup.rs)" >&2
  exit 1
fi

if ! grep -qx wasm32-unknown-unknown <<<"$(rustup target list --installed)"; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# The dashboard's own build compiles the standard library for the browser with a nightly toolchain
# (scripts/dashboard-build.sh says why): the machine's own, with its source and wasm32 target added, or one
# installed from rustup when there is none. Should that fail, the dashboard is built with stable, larger (the
# first-load test then fails its ceiling), and the build says so. Lists are read whole before grep: `grep -q`
# leaves at the first match, and under pipefail the writer's broken pipe would read as "missing".
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  say "installing a nightly toolchain (minimal, rust-src, wasm32) for the dashboard's build"
  rustup toolchain install nightly --profile minimal --component rust-src --target wasm32-unknown-unknown ||
    say "no nightly toolchain could be installed: the dashboard will be built with stable"
fi
if rustup run nightly rustc --version >/dev/null 2>&1; then
  components=$(rustup component list --toolchain nightly --installed)
  if ! grep -qx rust-src <<<"$components"; then
    say "adding rust-src to the nightly toolchain"
    rustup component add rust-src --toolchain nightly
  fi
  targets=$(rustup target list --toolchain nightly --installed)
  if ! grep -qx wasm32-unknown-unknown <<<"$targets"; then
    say "adding the wasm32-unknown-unknown target to the nightly toolchain"
    rustup target add wasm32-unknown-unknown --toolchain nightly
  fi
fi

if ! cargo leptos --version 2>/dev/null | grep -q "$CARGO_LEPTOS_VERSION"; then
  say "installing cargo-leptos $CARGO_LEPTOS_VERSION (about 13 minutes on 2 cores, once)"
  cargo install cargo-leptos --locked --version "$CARGO_LEPTOS_VERSION"
fi

if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  # --locked fails (a locked dependency is gone from the index); the fallback resolver picks versions that
  # build on this toolchain.
  CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

if ! command -v npm >/dev/null; then
  say "installing Node.js and npm from Debian"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm
fi

# npm packages from the lockfile; the stamp makes the check instant when nothing changed.
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.watchpost-lock 2>/dev/null)" != "$lock_sum" ]; then
  say "installing npm packages from package-lock.json"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
  echo "$lock_sum" > node_modules/.watchpost-lock
fi

# The ECharts bundle (only the charts Watchpost draws), rebuilt when its entry or the packages change. Its
# name carries a hash of its content (`public/echarts.<hash>.js`), so browsers may cache it for good; the
# one before it (and the unhashed name of earlier versions) goes.
bundle=$(ls -t public/echarts.*.js 2>/dev/null | head -n1 || true)
if [ -z "$bundle" ] || [ charts/echarts-entry.js -nt "$bundle" ] || [ package-lock.json -nt "$bundle" ]; then
  say "bundling ECharts"
  rm -f public/echarts.js public/echarts.*.js
  npm run -s echarts
fi

if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null; then
  say "installing Debian's chromium"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi

if [ "${1:-}" = "--browser" ] && ! command -v haproxy >/dev/null; then
  say "installing Debian's haproxy, for the scale-out convergence test"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy
fi

if [ "${1:-}" = "--browser" ] && ! command -v promtool >/dev/null; then
  say "installing Debian's prometheus package, for promtool"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
fi
