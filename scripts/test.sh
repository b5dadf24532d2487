#!/usr/bin/env bash
# Runs every test of the project. Installs what the tests need first (Debian packages, Python tools),
# so it works on a clean machine. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

# Tests run a real Prometheus and Alertmanager, nginx (https, HTTP/2 and keep-alive peer, certificates made
# with openssl), headless Chromium (HTML report) and tmux (live view).
ensure_commands promtool=prometheus amtool=prometheus-alertmanager chromium=chromium tmux=tmux nginx=nginx openssl=openssl taskset=util-linux

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
echo "==> who each shipped scenario pages (stack Alertmanager routing, amtool)"
cargo run --quiet --locked -p loadgen -- coverage --routes scenarios/*.toml
if [ -x scripts/check-stack.sh ]; then
    echo "==> stack checks"
    scripts/check-stack.sh
fi
if [ -x scripts/check-k8s.sh ]; then
    echo "==> Kubernetes manifest checks"
    scripts/check-k8s.sh
fi
if [ -x scripts/check-queries.sh ]; then
    echo "==> query and dashboard checks"
    scripts/check-queries.sh
fi
if [ -x scripts/check-deny.sh ]; then
    echo "==> dependency policy (cargo deny)"
    scripts/check-deny.sh
fi
echo "==> all tests passed"
