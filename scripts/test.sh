#!/usr/bin/env bash
# Runs every test of the project. Installs what the tests need first (Debian packages, Python tools),
# so it works on a clean machine. Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

need_apt=()
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v amtool >/dev/null || need_apt+=(prometheus-alertmanager)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v tmux >/dev/null || need_apt+=(tmux)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "==> installing ${need_apt[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
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
