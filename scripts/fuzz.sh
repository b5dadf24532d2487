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
    # Seeds: the shipped scenarios for the scenario parser, a request of each fault kind for the chaos
    # API, a few framings for the HTTP/1.1 reader.
    case "$target" in
        scenario) cp scenarios/*.toml loadgen/tests/fail/*.toml "fuzz/corpus/$target/" 2>/dev/null || true ;;
        chaos_request)
            i=0
            for fault in '{"fault":"error","status":503,"ratio":0.3,"routes":["/"]}' \
                '{"fault":"latency","delay":"800ms","jitter":"200ms","ratio":0.5}' \
                '{"fault":"timeout","ratio":0.1,"hold":"5s"}' '{"fault":"reset","ratio":0.2}' \
                '{"fault":"downstream","ratio":1.0}' '{"fault":"cpu","threads":2}' \
                '{"fault":"memory","mb_per_second":10,"limit_mb":64}' '{"fault":"outage","duration":"30s"}' \
                '{"fault":"rate_limit","rps":10,"burst":5}'; do
                printf '{"seed":7,"faults":[%s]}' "$fault" > "fuzz/corpus/$target/seed-$i.json"
                i=$((i + 1))
            done
            ;;
        http1_answer)
            printf 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello' > "fuzz/corpus/$target/length"
            printf 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=1\r\nabcd\r\n0\r\nT: t\r\n\r\n' \
                > "fuzz/corpus/$target/chunked"
            printf 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n' > "fuzz/corpus/$target/informational"
            ;;
    esac
    (cd fuzz && cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536)
done
echo "==> no crash in ${#targets[@]} targets (${seconds}s each)"
