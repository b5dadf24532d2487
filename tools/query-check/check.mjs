// Static checks of the query catalogs (queries/*.md, docs/workshop.md) and the Grafana dashboards
// (dashboards/*.json). Run by scripts/check-queries.sh, which installs the grammars and runs promtool on
// the PromQL this script collects.
//
// Checks, each reported as passed or failed with every problem listed:
//   - dashboards are in Grafana's file-provisioning shape, with unique panel ids (nested rows included);
//   - every datasource reference names a provisioned uid, with the provisioned type;
//   - every LogQL and TraceQL query parses with Grafana's own lezer grammars (no error node);
//   - LogQL stream selectors use only the labels the stack's Alloy sets;
//   - TraceQL attributes are ones the target sets; Pyroscope queries name the profile type and labels
//     the target's profiler pushes;
//   - every metric name in PromQL is in the target's catalog, a recording rule, a loadgen metric, `up`,
//     `ALERTS`, or (only in queries marked tempo-generated) a Tempo-generated metric; `alertname`s exist;
//   - every scenario a document names exists, and each catalog holds queries of its language.
// PromQL syntax itself is checked by promtool: the queries, with Grafana variables replaced by concrete
// values, go to the rule file given with --promql-rules.
//
// Usage: node tools/query-check/check.mjs [--root DIR] [--promql-rules FILE]
// Exit status: 0 when every check passed, 1 otherwise.

import { readFileSync, readdirSync, existsSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { parser as logqlParser } from '@grafana/lezer-logql';
import { parser as traceqlParser } from '@grafana/lezer-traceql';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const ROOT = opt('--root', join(dirname(new URL(import.meta.url).pathname), '..', '..'));
const PROMQL_RULES = opt('--promql-rules', null);

const rel = (p) => relative(ROOT, p);
const read = (p) => readFileSync(join(ROOT, p), 'utf8');
const listDir = (d, ext) =>
  existsSync(join(ROOT, d)) ? readdirSync(join(ROOT, d)).filter((f) => f.endsWith(ext)).sort().map((f) => join(d, f)) : [];

// ---------------------------------------------------------------------------------------------------
// Where the grammars lag the servers. Each entry: the exact query text, and why it is allowed.
// Keep it short; prefer writing the query in a form both accept (e.g. `0.95`, not `.95`).
const ALLOW = {
  logql: new Map([]),
  traceql: new Map([]),
};

// Grafana's variables, replaced by concrete values before parsing. `service` and `route` are the
// dashboards' own variables; the rest are Grafana's built-ins.
const VARIABLES = {
  __rate_interval: '1m',
  __interval: '1m',
  __auto: '1m',
  __range: '5m',
  __range_s: '300',
  __interval_ms: '60000',
  service: 'target-app',
  route: '/',
  scenario: 'baseline',
};

// Grafana's `${var:regex}` format escapes the value's regex metacharacters and `/` (a route `/` becomes `\/`).
// Substituting the escaped text lets the grammars see what Tempo and Pyroscope receive: inside a
// double-quoted string `\/` is an invalid escape, so such variables belong in raw (backtick) strings.
const regexEscape = (value) => value.replace(/[\\^$*+?.()|[\]{}/]/g, '\\$&');

function substitute(text, where, problems) {
  return text.replace(/\$\{(\w+)(?::(\w+))?\}|\$(\w+)/g, (all, braced, format, bare) => {
    const name = braced ?? bare;
    if (name in VARIABLES) return format === 'regex' ? regexEscape(VARIABLES[name]) : VARIABLES[name];
    problems.push(`${where}: unknown Grafana variable ${all} (add it to VARIABLES in tools/query-check/check.mjs)`);
    return all;
  });
}

// ---------------------------------------------------------------------------------------------------
// Facts read from the project, so the checks follow the code rather than a copy of it.

function catalogMetrics() {
  const src = read('target-app/src/metrics.rs');
  const consts = new Map([...src.matchAll(/pub const (\w+): &str = "([^"]+)";/g)].map((m) => [m[1], m[2]]));
  const block = src.match(/pub const CATALOG: &\[&str\] = &\[([\s\S]*?)\];/);
  if (!block) throw new Error('target-app/src/metrics.rs: no CATALOG found');
  const names = new Set();
  for (const ident of block[1].match(/\w+/g) ?? []) {
    if (!consts.has(ident)) throw new Error(`metrics.rs: CATALOG names ${ident}, which is not a string constant`);
    names.add(consts.get(ident));
  }
  const listed = src.match(/pub const HISTOGRAMS: &\[&str\] = &\[([\s\S]*?)\];/);
  if (!listed) throw new Error('target-app/src/metrics.rs: no HISTOGRAMS found');
  const histograms = new Set();
  for (const ident of listed[1].match(/\w+/g) ?? []) {
    if (!names.has(consts.get(ident))) throw new Error(`metrics.rs: HISTOGRAMS names ${ident}, which is not in CATALOG`);
    histograms.add(consts.get(ident));
  }
  return { names, histograms };
}

function recordingRules() {
  const names = new Set();
  for (const f of listDir('stack/prometheus/rules', '.yml')) {
    for (const m of read(f).matchAll(/^\s*-?\s*record:\s*["']?([\w:]+)/gm)) names.add(m[1]);
  }
  return names;
}

function alertNames() {
  const names = new Set();
  for (const f of listDir('stack/prometheus/rules', '.yml')) {
    for (const m of read(f).matchAll(/^\s*-?\s*alert:\s*["']?(\w+)/gm)) names.add(m[1]);
  }
  return names;
}

// The generator's metrics (served with --metrics-addr, see loadgen/src), plus any `loadgen_*` name its
// source spells out, so a metric added there is known here too.
function loadgenMetrics() {
  const names = new Set([
    'loadgen_requests_total',
    'loadgen_target_rps',
    'loadgen_in_flight',
    'loadgen_schedule_lag_seconds',
    'loadgen_phase_info',
  ]);
  const walk = (d) => {
    for (const e of readdirSync(join(ROOT, d), { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.rs')) for (const m of read(p).matchAll(/"(loadgen_[a-z0-9_]+)"/g)) names.add(m[1]);
    }
  };
  walk('loadgen/src');
  return names;
}

// Tempo's metrics-generator (span metrics and service graphs), as written to Prometheus.
const TEMPO_METRICS = new Set([
  'traces_spanmetrics_calls_total',
  'traces_spanmetrics_latency',
  'traces_spanmetrics_latency_bucket',
  'traces_spanmetrics_latency_sum',
  'traces_spanmetrics_latency_count',
  'traces_spanmetrics_size_total',
  'traces_service_graph_request_total',
  'traces_service_graph_request_failed_total',
  'traces_service_graph_request_server_seconds_bucket',
  'traces_service_graph_request_server_seconds_sum',
  'traces_service_graph_request_server_seconds_count',
  'traces_service_graph_request_client_seconds_bucket',
  'traces_service_graph_request_client_seconds_sum',
  'traces_service_graph_request_client_seconds_count',
  'traces_service_graph_unpaired_spans_total',
  'traces_service_graph_dropped_spans_total',
]);
const isTempoMetric = (n) => n.startsWith('traces_spanmetrics_') || n.startsWith('traces_service_graph_');

// Labels that Loki streams carry: what Alloy's relabelling and static labels set on container logs,
// and service_name, which Loki derives from service.name on the OTLP path.
function lokiLabels() {
  const src = read('stack/alloy/config.alloy');
  const labels = new Set(['service_name']);
  for (const m of src.matchAll(/target_label\s*=\s*"(\w+)"/g)) labels.add(m[1]);
  for (const m of src.matchAll(/\blabels\s*=\s*\{([^}]*)\}/g)) {
    for (const k of m[1].matchAll(/(\w+)\s*=/g)) labels.add(k[1]);
  }
  return labels;
}

// Span and resource attributes the target sets: every `KeyValue::new("…"`, `set_attribute("…"` and
// `.record("…"` in its source, every field of its `info_span!(…)` spans (but `otel.*`, which name the span),
// and every `…_ATTRIBUTE` constant; those in the telemetry module are resource attributes (with
// service.name, set by `with_service_name`).
function spanAttributes() {
  const span = new Set();
  const resource = new Set(['service.name']);
  const walk = (d) => {
    for (const e of readdirSync(join(ROOT, d), { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.rs')) {
        const into = p.endsWith(join('telemetry', 'mod.rs')) ? resource : span;
        const text = read(p);
        for (const m of text.matchAll(/KeyValue::new\(\s*"([^"]+)"/g)) into.add(m[1]);
        for (const m of text.matchAll(/(?:set_attribute|\.record)\(\s*"([^"]+)"/g)) span.add(m[1]);
        for (const m of text.matchAll(/_ATTRIBUTE: &str = "([^"]+)"/g)) span.add(m[1]);
        for (const body of text.matchAll(/info_span!\(([\s\S]*?)\);/g)) {
          for (const m of body[1].matchAll(/([a-z]\w*(?:\.\w+)+)\s*=/g)) {
            if (!m[1].startsWith('otel.')) span.add(m[1]);
          }
        }
      }
    }
  };
  walk('target-app/src');
  return { span, resource };
}

// Labels of the pushed profiles: service_name (the application name) and the agent's tags.
function profileLabels() {
  const src = read('target-app/src/telemetry/profiles.rs');
  const labels = new Set(['service_name']);
  const tags = src.match(/\.tags\(vec!\[([\s\S]*?)\]\)/);
  if (tags) for (const m of tags[1].matchAll(/\(\s*"(\w+)"/g)) labels.add(m[1]);
  return labels;
}
// pyroscope-rs's pprof backend pushes CPU time as `cpu`/`nanoseconds` samples under `process_cpu`.
const PROFILE_TYPES = new Set(['process_cpu:cpu:nanoseconds:cpu:nanoseconds']);

// The provisioned datasources: uid → type, from a deliberately small reading of the YAML (a list of
// `- name:` items with `uid:` and `type:` keys at the item's own indentation).
function provisionedDatasources() {
  const ds = new Map();
  for (const f of listDir('stack/grafana/provisioning/datasources', '.yml')) {
    let item = null;
    let indent = -1;
    for (const line of read(f).split('\n')) {
      const start = line.match(/^(\s*)- name:/);
      if (start) {
        if (item?.uid) ds.set(item.uid, item.type);
        item = {};
        indent = start[1].length + 2;
        continue;
      }
      if (!item) continue;
      const kv = line.match(/^(\s*)(uid|type):\s*["']?([^"'\s#]+)/);
      if (kv && kv[1].length === indent) item[kv[2]] = kv[3];
    }
    if (item?.uid) ds.set(item.uid, item.type);
  }
  return ds;
}
const BUILTIN_DATASOURCES = new Set(['-- Grafana --', 'grafana', '-- Mixed --', '-- Dashboard --', '__expr__']);

// ---------------------------------------------------------------------------------------------------
// Extraction.

/** Fenced code blocks of a Markdown file: {lang, text, line, tempo} (tempo: marked tempo-generated). */
export function fencedBlocks(text) {
  const lines = text.split('\n');
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    const open = lines[i].match(/^(\s*)(`{3,}|~{3,})(.*)$/);
    if (!open) continue;
    const [, indent, fence, info] = open;
    const close = new RegExp(`^\\s*${fence[0] === '`' ? '`' : '~'}{${fence.length},}\\s*$`);
    const body = [];
    const line = i + 1;
    let j = i - 1;
    while (j >= 0 && lines[j].trim() === '') j--;
    const marker = j >= 0 ? lines[j].trim() : '';
    for (i++; i < lines.length && !close.test(lines[i]); i++) {
      body.push(lines[i].startsWith(indent) ? lines[i].slice(indent.length) : lines[i].trimStart());
    }
    blocks.push({
      lang: info.trim().split(/\s+/)[0] ?? '',
      text: body.join('\n').trim(),
      line,
      tempo: marker === '<!-- tempo-generated -->',
    });
  }
  return blocks;
}

/** Every panel of a dashboard, rows' nested panels included, with a path for messages. */
function allPanels(dash) {
  const out = [];
  const walk = (panels, path) =>
    (panels ?? []).forEach((p, i) => {
      const here = `${path}[${i}]`;
      out.push({ panel: p, path: here });
      if (Array.isArray(p.panels)) walk(p.panels, `${here}.panels`);
    });
  walk(dash.panels, 'panels');
  return out;
}

const uidOf = (ds) => (ds && typeof ds === 'object' ? ds.uid : typeof ds === 'string' ? ds : undefined);

/** Queries of a dashboard: {lang, text, where, tempo}. Datasource by uid: target's, else panel's. */
function dashboardQueries(file, dash, problems) {
  const out = [];
  const add = (lang, text, where) => {
    if (typeof text !== 'string' || !text.trim()) return;
    out.push({ lang, raw: text, text: substitute(text, where, problems), where });
  };
  for (const { panel, path } of allPanels(dash)) {
    (panel.targets ?? []).forEach((t, i) => {
      const where = `${file}: ${path} "${panel.title}" targets[${i}]`;
      const uid = uidOf(t.datasource) ?? uidOf(panel.datasource);
      if (uid === 'prometheus') add('promql', t.expr, where);
      else if (uid === 'loki') add('logql', t.expr, where);
      else if (uid === 'tempo' && (t.queryType ?? 'traceql') === 'traceql') add('traceql', t.query, where);
      else if (uid === 'pyroscope') add('pyroscope', `${t.profileTypeId ?? ''}${t.labelSelector ?? '{}'}`, where);
    });
  }
  (dash.annotations?.list ?? []).forEach((a, i) => {
    const where = `${file}: annotations.list[${i}] "${a.name}"`;
    const uid = uidOf(a.datasource);
    const expr = a.target?.expr ?? a.expr;
    if (uid === 'prometheus') add('promql', expr, where);
    else if (uid === 'loki') add('logql', expr, where);
  });
  (dash.templating?.list ?? []).forEach((v, i) => {
    const where = `${file}: templating.list[${i}] "${v.name}"`;
    if (uidOf(v.datasource) !== 'prometheus') return;
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    if (!q) return;
    // label_values(selector, label) and query_result(expr) hold PromQL; label_names() and metrics() none.
    const m = q.match(/^\s*(?:label_values\(\s*(.*),\s*\w+\s*\)|query_result\((.*)\))\s*$/s);
    if (m) add('promql', m[1] ?? m[2], where);
    else if (!/^\s*(label_values\(\s*\w+\s*\)|label_names\(.*\)|metrics\(.*\))\s*$/.test(q)) {
      problems.push(`${where}: variable query ${JSON.stringify(q)} is not one the checks understand`);
    }
  });
  return out;
}

// ---------------------------------------------------------------------------------------------------
// PromQL metric names, without a full parser: strings, comments, label matchers and ranges are
// dropped, then every identifier that is not a function call, keyword, grouping label or number is a
// metric name.

const PROMQL_KEYWORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless',
  'inf', 'nan', 'Inf', 'NaN',
]);
const GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

export function promqlMetricNames(q) {
  const s = q
    .replace(/#[^\n]*/g, ' ')
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^{}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ');
  const names = [];
  const re = /[A-Za-z_:][A-Za-z0-9_:]*|[0-9.][0-9A-Za-z_.]*|[()]|[^\sA-Za-z0-9_:.()]+/g;
  const tokens = s.match(re) ?? [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!/^[A-Za-z_:]/.test(t)) continue;
    if (tokens[i + 1] === '(') {
      if (GROUPING.has(t)) {
        let depth = 0;
        for (i++; i < tokens.length; i++) {
          if (tokens[i] === '(') depth++;
          else if (tokens[i] === ')' && --depth === 0) break;
        }
      }
      continue; // a function or aggregation
    }
    if (PROMQL_KEYWORDS.has(t)) continue;
    if (tokens[i + 1] === 'by' || tokens[i + 1] === 'without') continue; // `sum by (…) (…)`
    names.push(t);
  }
  return names;
}

// ---------------------------------------------------------------------------------------------------
// Lezer helpers.

function parseErrors(parser, text) {
  const errors = [];
  parser.parse(text).iterate({
    enter: (n) => {
      if (n.type.isError) errors.push(n.from);
    },
  });
  return errors;
}

function nodes(parser, text, name) {
  const out = [];
  parser.parse(text).iterate({
    enter: (n) => {
      if (n.name === name) out.push(n.node);
    },
  });
  return out;
}

function showAt(text, pos) {
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const col = pos - before.lastIndexOf('\n');
  return `line ${line}, column ${col}, near ${JSON.stringify(text.slice(pos, pos + 20))}`;
}

// ---------------------------------------------------------------------------------------------------
// The checks.

const results = [];
function check(name, fn) {
  const problems = [];
  try {
    const summary = fn(problems);
    results.push({ name, problems, summary });
  } catch (e) {
    results.push({ name, problems: [...problems, `internal error: ${e.stack ?? e}`], summary: '' });
  }
}

const datasources = provisionedDatasources();
const dashFiles = listDir('dashboards', '.json');
const dashboards = [];
const extractionProblems = [];

check('dashboards: file-provisioning shape', (problems) => {
  const uids = new Map();
  const titles = new Map();
  for (const f of dashFiles) {
    let dash;
    try {
      dash = JSON.parse(read(f));
    } catch (e) {
      problems.push(`${f}: not valid JSON: ${e.message}`);
      continue;
    }
    if (!dash || typeof dash !== 'object' || Array.isArray(dash)) {
      problems.push(`${f}: not a JSON object`);
      continue;
    }
    if ('dashboard' in dash) {
      problems.push(`${f}: has a top-level "dashboard" key: that is the HTTP API's wrapper; file provisioning wants the dashboard object itself`);
    }
    if (typeof dash.uid !== 'string' || !/^[A-Za-z0-9_-]{1,40}$/.test(dash.uid)) {
      problems.push(`${f}: "uid" must be a string of 1-40 letters, digits, - or _ (got ${JSON.stringify(dash.uid)})`);
    } else if (uids.has(dash.uid)) {
      problems.push(`${f}: uid ${dash.uid} is already used by ${uids.get(dash.uid)}`);
    } else uids.set(dash.uid, f);
    if (typeof dash.title !== 'string' || !dash.title.trim()) problems.push(`${f}: no "title"`);
    else if (titles.has(dash.title)) problems.push(`${f}: title "${dash.title}" is already used by ${titles.get(dash.title)}`);
    else titles.set(dash.title, f);
    if (!Array.isArray(dash.panels) || dash.panels.length === 0) problems.push(`${f}: no "panels"`);
    if (!Array.isArray(dash.templating?.list)) problems.push(`${f}: no "templating": {"list": [...]}`);
    if (!Array.isArray(dash.annotations?.list)) problems.push(`${f}: no "annotations": {"list": [...]}`);
    if (typeof dash.schemaVersion !== 'number') problems.push(`${f}: no numeric "schemaVersion"`);
    if (dash.id !== undefined && dash.id !== null) {
      problems.push(`${f}: "id" must be absent or null in a provisioned dashboard (Grafana assigns it)`);
    }
    dashboards.push({ file: f, dash });
  }
  if (dashFiles.length === 0) problems.push('dashboards/: no *.json dashboards');
  return `${dashFiles.length} dashboards`;
});

check('dashboards: panels and unique panel ids', (problems) => {
  let count = 0;
  for (const { file, dash } of dashboards) {
    const seen = new Map();
    for (const { panel, path } of allPanels(dash)) {
      count++;
      if (!Number.isInteger(panel.id)) {
        problems.push(`${file}: ${path} "${panel.title}" has no integer "id"`);
        continue;
      }
      if (seen.has(panel.id)) problems.push(`${file}: panel id ${panel.id} is used by ${seen.get(panel.id)} and ${path}`);
      else seen.set(panel.id, path);
      if (typeof panel.type !== 'string') problems.push(`${file}: ${path} has no "type"`);
      const g = panel.gridPos;
      if (!g || !['x', 'y', 'w', 'h'].every((k) => Number.isInteger(g[k]))) {
        problems.push(`${file}: ${path} "${panel.title}" has no complete "gridPos"`);
      }
      if (panel.type === 'row' && !panel.collapsed && (panel.panels ?? []).length > 0) {
        problems.push(`${file}: ${path} is an open row holding panels: only a collapsed row keeps its panels inside`);
      }
    }
  }
  return `${count} panels`;
});

check('dashboards: datasources by provisioned uid', (problems) => {
  if (datasources.size === 0) problems.push('stack/grafana/provisioning/datasources: no datasources with a uid found');
  let count = 0;
  const walk = (node, path, file) => {
    if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${path}[${i}]`, file));
    if (!node || typeof node !== 'object') return;
    for (const [k, v] of Object.entries(node)) {
      const here = path ? `${path}.${k}` : k;
      if (k === 'datasource') {
        count++;
        if (typeof v === 'string') {
          problems.push(`${file}: ${here} = ${JSON.stringify(v)}: name datasources by {"type", "uid"}, not by a string`);
        } else if (v && typeof v === 'object') {
          if (BUILTIN_DATASOURCES.has(v.uid)) continue;
          if (typeof v.uid !== 'string') problems.push(`${file}: ${here} has no uid`);
          else if (v.uid.startsWith('$')) problems.push(`${file}: ${here} uses a datasource variable (${v.uid}); use the fixed uid`);
          else if (!datasources.has(v.uid)) {
            problems.push(`${file}: ${here}.uid = ${JSON.stringify(v.uid)} is not provisioned (known: ${[...datasources.keys()].join(', ')})`);
          } else if (v.type !== datasources.get(v.uid)) {
            problems.push(`${file}: ${here}: uid ${v.uid} is provisioned with type ${datasources.get(v.uid)}, not ${JSON.stringify(v.type)}`);
          }
        }
      } else if (/^datasourceuid$/i.test(k) && typeof v === 'string') {
        count++;
        if (!datasources.has(v)) problems.push(`${file}: ${here} = ${JSON.stringify(v)} is not provisioned`);
      }
      walk(v, here, file);
    }
  };
  for (const { file, dash } of dashboards) walk(dash, '', file);
  return `${count} references to ${datasources.size} datasources (${[...datasources.keys()].join(', ')})`;
});

// Collect every query once; the checks below look at them by language.
const queries = [];
const docFiles = [...listDir('queries', '.md'), ...(existsSync(join(ROOT, 'docs/workshop.md')) ? ['docs/workshop.md'] : [])];
const QUERY_LANGS = new Set(['promql', 'logql', 'traceql', 'pyroscope']);
for (const f of docFiles) {
  for (const b of fencedBlocks(read(f))) {
    if (!QUERY_LANGS.has(b.lang)) continue;
    const where = `${f}:${b.line}`;
    queries.push({ lang: b.lang, raw: b.text, text: substitute(b.text, where, extractionProblems), where, tempo: b.tempo, doc: true });
  }
}
for (const { file, dash } of dashboards) {
  for (const q of dashboardQueries(file, dash, extractionProblems)) {
    queries.push({ ...q, tempo: promqlMetricNames(q.text).some(isTempoMetric), doc: false });
  }
}
const byLang = (l) => queries.filter((q) => q.lang === l);

check('catalogs: every block tagged, every catalog holds its queries', (problems) => {
  const expect = { 'queries/metrics.md': 'promql', 'queries/logs.md': 'logql', 'queries/traces.md': 'traceql', 'queries/profiles.md': 'pyroscope' };
  for (const [f, lang] of Object.entries(expect)) {
    if (!existsSync(join(ROOT, f))) {
      problems.push(`${f}: missing`);
      continue;
    }
    const n = queries.filter((q) => q.where.startsWith(`${f}:`) && q.lang === lang).length;
    if (n === 0) problems.push(`${f}: no \`\`\`${lang} blocks found`);
  }
  for (const f of listDir('queries', '.md')) {
    for (const b of fencedBlocks(read(f))) {
      if (!b.lang) problems.push(`${f}:${b.line}: a fenced block without a language tag (promql, logql, traceql, pyroscope, or sh/text)`);
    }
  }
  problems.push(...extractionProblems);
  const counts = [...QUERY_LANGS].map((l) => `${byLang(l).length} ${l}`).join(', ');
  return `${counts} (${queries.filter((q) => q.doc).length} in documents, ${queries.filter((q) => !q.doc).length} in dashboards)`;
});

check('catalogs: named scenarios exist', (problems) => {
  let count = 0;
  for (const f of docFiles) {
    for (const m of read(f).matchAll(/scenarios\/([\w.-]+\.toml)/g)) {
      count++;
      if (!existsSync(join(ROOT, 'scenarios', m[1])) && m[1] !== 'X.toml' && m[1] !== 'NAME.toml') {
        problems.push(`${f}: names scenarios/${m[1]}, which does not exist`);
      }
    }
  }
  return `${count} mentions`;
});

for (const [lang, parser] of [['logql', logqlParser], ['traceql', traceqlParser]]) {
  check(`${lang}: parses with Grafana's grammar`, (problems) => {
    let allowed = 0;
    for (const q of byLang(lang)) {
      const errors = parseErrors(parser, q.text);
      if (errors.length === 0) continue;
      if (ALLOW[lang].has(q.raw.trim())) {
        allowed++;
        continue;
      }
      problems.push(`${q.where}: syntax error at ${showAt(q.text, errors[0])}\n    ${q.text.replace(/\n/g, '\n    ')}`);
    }
    return `${byLang(lang).length} queries${allowed ? `, ${allowed} allowed by the allow-list` : ''}`;
  });
}

check('logql: stream selectors use the labels Alloy sets', (problems) => {
  const labels = lokiLabels();
  for (const q of byLang('logql')) {
    for (const matcher of nodes(logqlParser, q.text, 'Matcher')) {
      let up = matcher.parent;
      while (up && up.name === 'Matchers') up = up.parent;
      if (up?.name !== 'Selector') continue; // a label filter of the pipeline, not a stream selector
      const ident = matcher.getChild('Identifier');
      const name = ident && q.text.slice(ident.from, ident.to);
      if (name && !labels.has(name)) {
        problems.push(`${q.where}: stream label ${name} is not set by stack/alloy/config.alloy (labels: ${[...labels].join(', ')})`);
      }
    }
  }
  return `labels ${[...labels].join(', ')}`;
});

check('traceql: attributes are ones the target sets', (problems) => {
  const { span, resource } = spanAttributes();
  for (const q of byLang('traceql')) {
    for (const field of nodes(traceqlParser, q.text, 'AttributeField')) {
      const ident = field.getChild('Identifier');
      if (!ident) continue;
      const name = q.text.slice(ident.from, ident.to).replace(/^"|"$/g, '');
      const scope = field.firstChild && field.firstChild.name !== 'Identifier' ? field.firstChild.name : 'any';
      const known = scope === 'Resource' ? resource.has(name) : scope === 'Span' ? span.has(name) : scope === 'any' ? span.has(name) || resource.has(name) : true;
      if (!known) {
        problems.push(`${q.where}: ${q.text.slice(field.from, field.to)} is not an attribute the target sets (${scope === 'Resource' ? 'resource' : 'span'} attributes: ${[...(scope === 'Resource' ? resource : span)].sort().join(', ')})`);
      }
    }
  }
  return `${span.size} span and ${resource.size} resource attributes known`;
});

check('pyroscope: profile types and labels the profiler pushes', (problems) => {
  const labels = profileLabels();
  for (const q of byLang('pyroscope')) {
    const m = q.text.match(/^([\w]+(?::[\w]+){4})(\{.*\})$/s);
    if (!m) {
      problems.push(`${q.where}: expected PROFILE_TYPE{selector}, e.g. process_cpu:cpu:nanoseconds:cpu:nanoseconds{service_name="target-app"}; got ${JSON.stringify(q.text)}`);
      continue;
    }
    if (!PROFILE_TYPES.has(m[1])) problems.push(`${q.where}: profile type ${m[1]} is not pushed by the target (pushed: ${[...PROFILE_TYPES].join(', ')})`);
    const body = m[2].slice(1, -1).replace(/"(?:[^"\\]|\\.)*"|`[^`]*`/g, '""');
    for (const lm of body.matchAll(/(\w+)\s*(=~|!~|!=|=)/g)) {
      if (!labels.has(lm[1])) problems.push(`${q.where}: label ${lm[1]} is not pushed by the target's profiler (labels: ${[...labels].join(', ')})`);
    }
  }
  return `${byLang('pyroscope').length} queries, labels ${[...labels].join(', ')}`;
});

check('promql: metric names exist', (problems) => {
  const { names: catalog, histograms } = catalogMetrics();
  const rules = recordingRules();
  const loadgen = loadgenMetrics();
  const alerts = alertNames();
  const known = (n) =>
    catalog.has(n) ||
    [...histograms].some((h) => n === `${h}_bucket` || n === `${h}_sum` || n === `${h}_count`) ||
    rules.has(n) ||
    loadgen.has(n) ||
    loadgen.has(n.replace(/_(bucket|sum|count)$/, '')) ||
    n === 'up' ||
    n === 'ALERTS';
  let count = 0;
  for (const q of [...byLang('promql')]) {
    const names = promqlMetricNames(q.text);
    if (names.length === 0) problems.push(`${q.where}: no metric name found in ${JSON.stringify(q.text)}`);
    const tempo = names.filter(isTempoMetric);
    if (q.doc && tempo.length > 0 && !q.tempo) {
      problems.push(`${q.where}: reads Tempo-generated ${tempo[0]}: put <!-- tempo-generated --> on the line before the block`);
    }
    if (q.doc && q.tempo && tempo.length === 0) {
      problems.push(`${q.where}: marked tempo-generated but reads no traces_* metric: remove the marker so the query is run`);
    }
    for (const n of names) {
      count++;
      if (isTempoMetric(n)) {
        if (!TEMPO_METRICS.has(n)) problems.push(`${q.where}: ${n} is not a metric Tempo's metrics-generator writes`);
      } else if (!known(n)) {
        problems.push(`${q.where}: metric ${n} is not in the target's CATALOG (target-app/src/metrics.rs), a recording rule, a loadgen metric, up or ALERTS`);
      }
    }
    for (const m of q.text.matchAll(/alertname\s*(=~|=)\s*"([^"]*)"/g)) {
      const re = m[1] === '=~' ? new RegExp(`^(?:${m[2]})$`) : null;
      if (![...alerts].some((a) => (re ? re.test(a) : a === m[2]))) {
        problems.push(`${q.where}: alertname ${m[1]} "${m[2]}" matches no alert of stack/prometheus/rules (${[...alerts].join(', ')})`);
      }
    }
  }
  return `${count} names in ${byLang('promql').length} queries`;
});

if (PROMQL_RULES) {
  check('promql: rule file for promtool written', (problems) => {
    const indent = (t) => t.split('\n').map((l) => `          ${l}`).join('\n');
    const groups = [];
    const exprs = byLang('promql').map((q) => ({ where: q.where, expr: q.text }));
    // Pyroscope selectors are label matchers in PromQL's syntax: promtool checks them too.
    for (const q of byLang('pyroscope')) {
      const m = q.text.match(/(\{.*\})$/s);
      if (m) exprs.push({ where: q.where, expr: `pyroscope_selector${m[1]}` });
    }
    exprs.forEach(({ where, expr }, i) => {
      groups.push(`  - name: ${JSON.stringify(`${where} #${i}`)}\n    rules:\n      - record: query_check:q${i}\n        expr: |-\n${indent(expr)}`);
    });
    if (groups.length === 0) problems.push('no PromQL found');
    mkdirSync(dirname(PROMQL_RULES), { recursive: true });
    writeFileSync(
      PROMQL_RULES,
      `# Generated by tools/query-check/check.mjs: every PromQL query of queries/, docs/workshop.md and\n# dashboards/, with Grafana variables replaced, for \`promtool check rules\`. Do not edit.\ngroups:\n${groups.join('\n')}\n`,
    );
    return `${groups.length} expressions in ${PROMQL_RULES}`;
  });
}

let failed = 0;
for (const r of results) {
  if (r.problems.length === 0) {
    console.log(`ok      ${r.name}: ${r.summary}`);
  } else {
    failed++;
    console.log(`FAILED  ${r.name}`);
    for (const p of r.problems) console.log(`  - ${p}`);
  }
}
console.log(`query-check: ${results.length - failed} passed, ${failed} failed`);
process.exitCode = failed ? 1 : 0;
