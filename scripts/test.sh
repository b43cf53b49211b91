#!/usr/bin/env bash
# Runs every check and test: formatting, clippy (server and WASM), the WASM dependency check, unit and
# integration tests, then the end-to-end tests in headless Chromium against a release build.
# Ends with one summary line: "watchpost: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --browser || { echo "watchpost: 0 passed, 1 failed"; exit 1; }

# A clean build each run: incremental caches would only cost time and (many GB of) disk.
export CARGO_INCREMENTAL=0

logs=target/test-logs
mkdir -p "$logs"
passed=0
failed=0
failures=()

stage() { # name, command...
  local name=$1; shift
  printf '\n==> %s\n' "$name"
  if "$@"; then return 0; fi
  failures+=("$name")
  return 1
}

check() { # a check counts as one test
  if stage "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

wasm_pulls_no_server_crates() {
  local heavy
  heavy=$(cargo tree -q -p frontend --target wasm32-unknown-unknown -e normal --prefix none \
    | grep -E '^(tokio|axum|sqlx|sysinfo|hyper|rusqlite|async-nats|leptos_axum) ' | sort -u)
  if [ -n "$heavy" ]; then echo "the WASM build pulls server crates:"; echo "$heavy"; return 1; fi
  echo "the WASM build pulls no server crates"
}

check "cargo fmt" cargo fmt --all -- --check
check "clippy (server)" cargo clippy --all-targets -- -D warnings
check "clippy (wasm)" cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings
check "wasm dependencies" wasm_pulls_no_server_crates

# Unit and integration tests: count what cargo's own summary lines say.
stage "cargo test" bash -c "cargo test 2>&1 | tee $logs/cargo-test.log"
cargo_status=$?
read -r cp cf < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
  END { print p + 0, f + 0 }' "$logs/cargo-test.log")
passed=$((passed + cp)); failed=$((failed + cf))
if [ "$cargo_status" -ne 0 ] && [ "$cf" -eq 0 ]; then failed=$((failed + 1)); fi

# End to end: the release build a user runs, driven by Playwright in Debian's Chromium.
if stage "release build" scripts/build.sh; then
  rm -f end2end/test-results/results.json
  stage "playwright" npx playwright test -c end2end/playwright.config.ts
  read -r ep ef < <(node -e '
    try {
      const s = require("./end2end/test-results/results.json").stats;
      console.log(s.expected + s.flaky, s.unexpected);
    } catch { console.log(0, 1); }')
  passed=$((passed + ep)); failed=$((failed + ef))
else
  failed=$((failed + 1))
fi

if [ ${#failures[@]} -gt 0 ]; then printf '\nfailed stages: %s\n' "${failures[*]}"; fi
echo "watchpost: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#failures[@]} -eq 0 ]
