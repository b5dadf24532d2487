#!/usr/bin/env bash
# Fuzzes what users type and servers send: scenario files, chaos API requests and HTTP/1.1 answers.
# Each target runs SECONDS (default 60) with libFuzzer; a crash stops the script with the input saved
# under fuzz/artifacts/TARGET/. Not part of the test command: it needs the nightly toolchain and
# cargo-fuzz, which it installs (cargo install, from the package registry) when missing.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(scenario chaos_request http1_answer)
fi

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "==> installing the nightly toolchain (rustup)"
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz (cargo install)"
    cargo install cargo-fuzz --locked
fi

for target in "${targets[@]}"; do
    echo "==> fuzzing $target for ${seconds}s"
    mkdir -p "fuzz/corpus/$target"
    # Seeds: the shipped scenarios for the scenario parser.
    if [ "$target" = scenario ]; then
        cp scenarios/*.toml loadgen/tests/fail/*.toml "fuzz/corpus/$target/" 2>/dev/null || true
    fi
    (cd fuzz && cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536)
done
echo "==> no crash in ${#targets[@]} targets (${seconds}s each)"
