#!/usr/bin/env bash
# The dashboard's own build of the app, which carries no other page (the `dashboard-only` feature: see
# `routed` in app/src/lib.rs), so the dashboard's first load is not the whole app's (issue 18). Made after
# cargo-leptos's build of the whole app and into the same site, with the same profile: cargo, wasm-bindgen,
# wasm-opt -Oz, the JS minified, and the content's hash in each name, listed in target/site/hash-dashboard.txt
# as cargo-leptos lists its own in hash.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

front=target/front
out=target/front/dashboard
pkg=target/site/pkg
name=watchpost-dashboard

build=(--package=frontend --lib --target=wasm32-unknown-unknown --no-default-features
  --features=dashboard-only --profile=wasm-release)

# The standard library is compiled for this build with the app, for size, and a panic in it is a trap with
# no message and no formatting code (-Cpanic=immediate-abort, the successor of the `panic_immediate_abort`
# the Leptos book's binary-size chapter names): about 33 KB off the WASM as brotli, 8 % (issue 18). That takes
# a nightly toolchain with its source and wasm32 target (setup.sh sees to both), and its own target folder,
# since every crate compiles differently (3.5 minutes once). Without one, or should that nightly fail to build
# it, the dashboard is built with stable, as before, and the build says so.
nightly() {
  local components targets
  rustup run nightly rustc --version >/dev/null 2>&1 || return 1
  # Read whole before grep: `grep -q` leaves at the first match, and under pipefail the writer's broken
  # pipe would read as "missing".
  components=$(rustup component list --toolchain nightly --installed) || return 1
  targets=$(rustup target list --toolchain nightly --installed) || return 1
  grep -qx rust-src <<<"$components" && grep -qx wasm32-unknown-unknown <<<"$targets" || return 1
  front=target/front-nightly
  # RUSTFLAGS replaces .cargo/config.toml's rustflags, so erase_components is repeated here.
  LEPTOS_OUTPUT_NAME=watchpost \
    RUSTFLAGS="--cfg erase_components -Zunstable-options -Cpanic=immediate-abort" \
    cargo +nightly build -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size \
    --target-dir="$front" "${build[@]}"
}

if ! nightly; then
  echo "dashboard build: no nightly toolchain with rust-src and wasm32 that builds it (scripts/setup.sh" \
    "adds them); built with stable, about 33 KB larger as brotli" >&2
  # The target folder cargo-leptos uses, so only `app` and `frontend` compile again. leptos_config reads the
  # output name when it is compiled: the same value as cargo-leptos's keeps the shared dependencies fresh.
  front=target/front
  LEPTOS_OUTPUT_NAME=watchpost cargo build --target-dir="$front" "${build[@]}"
fi
rm -rf "$out"
mkdir -p "$out" "$pkg"
wasm-bindgen --target web --no-typescript --out-dir "$out" --out-name "$name" \
  "$front/wasm32-unknown-unknown/wasm-release/frontend.wasm"
node_modules/.bin/wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
  "$out/${name}_bg.wasm" -o "$out/$name.wasm"
node_modules/.bin/esbuild "$out/$name.js" --minify --format=esm --log-level=warning --outfile="$out/$name.min.js"

hash() { sha256sum "$1" | cut -c1-20; }
wasm_hash=$(hash "$out/$name.wasm")
js_hash=$(hash "$out/$name.min.js")
rm -f "$pkg/$name".*
cp "$out/$name.wasm" "$pkg/$name.$wasm_hash.wasm"
cp "$out/$name.min.js" "$pkg/$name.$js_hash.js"
# `app:` names the whole app's WASM this was made beside: the server uses this build only while the site
# still holds that one, so a site rebuilt since by cargo-leptos alone never gets a dashboard of older code.
app_hash=$(awk -F': *' '$1 == "wasm" { print $2 }' target/site/hash.txt)
printf 'js: %s\nwasm: %s\napp: %s\n' "$js_hash" "$wasm_hash" "$app_hash" > target/site/hash-dashboard.txt
echo "dashboard build: $pkg/$name.$wasm_hash.wasm ($(stat -c %s "$out/$name.wasm") B), $name.$js_hash.js"
