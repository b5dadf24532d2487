#!/usr/bin/env bash
# Checks the query catalogs (queries/*.md, docs/workshop.md) and the Grafana dashboards (dashboards/*.json).
#
# Usage (from anywhere): scripts/check-queries.sh
#
#   - tools/query-check/check.mjs: dashboards in the file-provisioning shape, unique panel ids, datasources
#     by provisioned uid; LogQL and TraceQL parsed with Grafana's own grammars (npm packages pinned in
#     tools/query-check/package-lock.json); Loki labels, span attributes, profile types and labels, and
#     metric names checked against what the stack and the target really produce. It also writes every
#     PromQL query, Grafana variables replaced, into a rule file;
#   - promtool check rules on that file: every PromQL query parses.
#
# That each PromQL query returns data from a real Prometheus, and that the JSON log fields the LogQL
# queries filter on appear in real log lines, is checked by `cargo test -p loadgen --test it queries`.
#
# Installs what it lacks: Node.js and npm, and promtool (Debian's nodejs, npm and prometheus packages), and
# the grammars with `npm ci` into tools/query-check/node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOL=tools/query-check
OUT=.cache/query-check

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ensure_commands node=nodejs npm=npm promtool=prometheus

# npm ci wipes and reinstalls node_modules: do it only when the lockfile changed since the last install.
stamp=$TOOL/node_modules/.installed-lock.json
if ! cmp -s "$TOOL/package-lock.json" "$stamp" 2>/dev/null; then
    echo "==> installing the LogQL and TraceQL grammars (npm ci in $TOOL)"
    (cd "$TOOL" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$TOOL/package-lock.json" "$stamp"
fi

mkdir -p "$OUT"
promql_rules_parse() {
    if [ -s "$OUT/promql-rules.yml" ] && promtool check rules "$OUT/promql-rules.yml"; then
        return 0
    fi
    echo "a PromQL query does not parse; the group name in $OUT/promql-rules.yml says where it comes from" >&2
    return 1
}

check "static checks of queries and dashboards" node "$TOOL/check.mjs" --promql-rules "$OUT/promql-rules.yml"
check "promtool check rules (every PromQL query of queries/, docs/ and dashboards/)" promql_rules_parse
checks_done check-queries
