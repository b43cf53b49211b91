#!/usr/bin/env bash
# The dashboard's own build of the app, which carries no other page (the `dashboard-only` feature: see
# `routed` in app/src/lib.rs), so the dashboard's first load is not the whole app's (issue 18). Made as
# cargo-leptos makes the whole app's, after it and into the same site: the same profile and target folder
# (only `app` and `frontend` compile again), wasm-bindgen, wasm-opt -Oz, the JS minified, and the content's
# hash in each name, listed in target/site/hash-dashboard.txt as cargo-leptos lists its own in hash.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

front=target/front
out=$front/dashboard
pkg=target/site/pkg
name=watchpost-dashboard

# leptos_config reads the output name when it is compiled: the same value as cargo-leptos's keeps the
# dependencies it shares with that build fresh.
LEPTOS_OUTPUT_NAME=watchpost cargo build --package=frontend --lib --target-dir="$front" \
  --target=wasm32-unknown-unknown --no-default-features --features=dashboard-only --profile=wasm-release
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
