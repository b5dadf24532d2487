#!/usr/bin/env bash
# Checks the dependency tree against deny.toml: licenses, banned and duplicate crates, and sources.
#
# Usage (from anywhere): scripts/check-deny.sh
#
# Advisories are not checked: their database cannot be downloaded on the build machines. Installs
# cargo-deny first when it is missing (`cargo install`, about 5 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."

# The version deny.toml was written and checked against.
DENY_VERSION=0.20.2

if ! cargo deny --version >/dev/null 2>&1; then
    echo "==> installing cargo-deny $DENY_VERSION (cargo install, about 5 minutes)"
    cargo install cargo-deny --locked --version "$DENY_VERSION"
fi
cargo deny --log-level warn check bans licenses sources
