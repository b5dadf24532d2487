//! The HTML report (`--html FILE`): one self-contained page (inline CSS, SVG and a few lines of script, no
//! external resource), so it opens offline and can be mailed. Charts of intended versus achieved rate,
//! latency percentiles over time (corrected and uncorrected), errors per second and by class, with phase
//! bands, fault windows and the alert timeline; then the tables of the text summary.
//!
//! The charts are drawn here as SVG, so they show even where scripts are blocked; the script only
//! toggles series from the legends. Pure: `write_html(&Summary, &mut impl Write)`.

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::report::{Figures, Summary};
use crate::shared::{State, Verdict};

/// Above this many seconds, the per-second series are drawn as lines only, without a marker per
/// second, to keep the file small.
pub const MAX_MARKERS: usize = 1800;

const WIDTH: f64 = 960.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 22.0;
const BOTTOM: f64 = 26.0;

/// Colours of the outcome classes, in [`crate::shared::outcome::Class::ALL`] order.
const CLASS_COLOURS: [(&str, &str); 13] = [
    ("ok", "#4caf50"),
    ("http_4xx", "#ff9800"),
    ("http_5xx", "#e53935"),
    ("connect", "#8e24aa"),
    ("tls", "#d81b60"),
    ("timeout", "#3949ab"),
    ("reset", "#00897b"),
    ("closed", "#6d4c41"),
    ("protocol", "#c0ca33"),
    ("body_too_large", "#00acc1"),
    ("other", "#757575"),
    ("cancelled", "#bdbdbd"),
    ("panicked", "#000000"),
];

// Long words (URLs, label sets, the scope's notes) wrap anywhere rather than widen the page.
const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222;padding:0 12px;overflow-wrap:anywhere}\
pre{white-space:pre-wrap}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 6px}\
.verdict{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;font-weight:600}\
.pass{background:#2e7d32}.fail{background:#c62828}.verdict.unverified{background:#b26a00}.muted{color:#666}\
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}\
th,td{padding:3px 8px;border-bottom:1px solid #e3e3e3;text-align:right}th:first-child,td:first-child{text-align:left}\
tr.sub td:first-child{padding-left:22px;color:#555}td.ok{color:#2e7d32;font-weight:600}td.bad{color:#c62828;font-weight:600}td.unverified{color:#b26a00;font-weight:600}td.skip{color:#666}\
svg{display:block;width:100%;height:auto;background:#fff}svg text{font:11px system-ui,sans-serif;fill:#555}svg text.alertname{fill:#222;font-weight:600}\
.axis line{stroke:#ccc}.grid{stroke:#eee}.band{fill:#f4f6fa}.band.odd{fill:#fff}.bandname{fill:#333;font-weight:600}\
.fault{fill:#e53935;fill-opacity:.09}.faultbar{fill:#e53935;fill-opacity:.7}\
.change{stroke:#6a1b9a;stroke-width:1.5;stroke-dasharray:2 2}.changename{fill:#6a1b9a;font-size:10px}\
.line{fill:none;stroke-width:1.6}.dash{stroke-dasharray:5 3}.hidden{display:none}\
.legend span{display:inline-block;margin-right:14px;cursor:pointer;user-select:none}\
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px;border-radius:2px}\
.legend .off{opacity:.35}";

const SCRIPT: &str = "document.querySelectorAll('[data-toggle]').forEach(function(b){\
b.addEventListener('click',function(){var s=b.getAttribute('data-toggle');b.classList.toggle('off');\
document.querySelectorAll('[data-series=\"'+s+'\"]').forEach(function(e){e.classList.toggle('hidden');});});});\
document.body.setAttribute('data-ready','1');";

/// Writes the HTML report of `summary`.
pub fn write_html(summary: &Summary, out: &mut impl Write) -> io::Result<()> {
    let mut h = String::with_capacity(64 * 1024);
    let title = format!("loadgen: {}", summary.scenario);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title>\
         <style>{STYLE}</style></head><body>\n",
        esc(&title)
    );
    header(&mut h, summary);
    let length = summary.length_s().max(1.0);
    rate_chart(&mut h, summary, length);
    latency_chart(&mut h, summary, length);
    error_charts(&mut h, summary, length);
    alert_timeline(&mut h, summary, length);
    phase_tables(&mut h, summary);
    changes(&mut h, summary);
    expectations(&mut h, summary);
    let _ = write!(h, "<script>{SCRIPT}</script>\n</body></html>\n");
    out.write_all(h.as_bytes())
}

fn header(h: &mut String, s: &Summary) {
    let verdict = verdict_class(s.result);
    let _ = write!(
        h,
        "<header><h1>{}</h1><p class=\"muted\">{}</p>\
         <p><span class=\"verdict {verdict}\" id=\"verdict\">{}</span> \
         seed {} · target {} · {} · {}",
        esc(&s.scenario),
        esc(&s.description),
        s.result.as_str(),
        s.seed,
        esc(&s.target),
        esc(&s.ending),
        clock(s.length_s())
    );
    if let Some(shard) = &s.shard {
        let _ = write!(h, " · shard {}", esc(shard));
    }
    if !s.merged_shards.is_empty() {
        let _ = write!(h, " · merged from {}", esc(&s.merged_shards.join(", ")));
    }
    h.push_str("</p></header>\n");
}

/// A time chart: x from 0 to `length` seconds, y from 0 to `ymax`.
struct Chart {
    height: f64,
    length: f64,
    ymax: f64,
}

impl Chart {
    fn new(height: f64, length: f64, ymax: f64) -> Chart {
        Chart {
            height,
            length,
            ymax: nice_ceiling(ymax),
        }
    }

    fn x(&self, t: f64) -> f64 {
        LEFT + (t / self.length).clamp(0.0, 1.0) * (WIDTH - LEFT - RIGHT)
    }

    fn y(&self, v: f64) -> f64 {
        let inner = self.height - TOP - BOTTOM;
        TOP + inner - (v / self.ymax).clamp(0.0, 1.0) * inner
    }

    /// Opens the SVG with phase bands, fault windows, axes and grid.
    fn open(&self, h: &mut String, id: &str, s: &Summary, unit: &str) {
        let _ = write!(
            h,
            "<svg id=\"{id}\" viewBox=\"0 0 {WIDTH} {}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">",
            self.height
        );
        let bottom = self.height - BOTTOM;
        h.push_str("<g class=\"phases\">");
        for (i, p) in s.phases.iter().enumerate() {
            let (x0, x1) = (self.x(p.start_s), self.x(p.end_s));
            let _ = write!(
                h,
                "<rect class=\"band{}\" data-phase=\"{}\" x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\"/>\
                 <text class=\"bandname\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                if i % 2 == 1 { " odd" } else { "" },
                esc(&p.name),
                (x1 - x0).max(0.0),
                bottom - TOP,
                x0 + 4.0,
                TOP + 13.0,
                esc(&p.name)
            );
        }
        h.push_str("</g><g class=\"faults\">");
        for f in &s.fault_windows {
            let (x0, x1) = (self.x(f.start_s), self.x(f.end_s));
            let _ = write!(
                h,
                "<rect class=\"fault\" x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\"><title>faults: {} ({})</title></rect>\
                 <rect class=\"faultbar\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"3\"/>",
                (x1 - x0).max(0.0),
                bottom - TOP,
                esc(&f.faults.join(", ")),
                esc(&f.phase),
                bottom - 3.0,
                (x1 - x0).max(0.0)
            );
        }
        h.push_str("</g>");
        self.changes(h, s, bottom);
        h.push_str("<g class=\"axis\">");
        for i in 0..=4 {
            let v = self.ymax * f64::from(i) / 4.0;
            let y = self.y(v);
            let _ = write!(
                h,
                "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                number(v)
            );
        }
        let step = nice_ceiling(self.length / 8.0).max(1.0);
        let mut t = 0.0;
        while t <= self.length + 1e-9 {
            let x = self.x(t);
            let _ = write!(
                h,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{bottom:.1}\" y2=\"{:.1}\"/>\
                 <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                bottom + 4.0,
                bottom + 16.0,
                clock(t)
            );
            t += step;
        }
        let _ = write!(h, "<text x=\"4\" y=\"{:.1}\">{}</text></g>", TOP - 6.0, esc(unit));
    }

    /// A dashed line at each change made live, numbered as the table of changes lists them.
    fn changes(&self, h: &mut String, s: &Summary, bottom: f64) {
        h.push_str("<g class=\"changes\">");
        for (i, c) in s.changes.iter().enumerate() {
            let x = self.x(c.at_s);
            let _ = write!(
                h,
                "<line class=\"change\" data-change=\"{i}\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{bottom:.1}\">\
                 <title>{}: {} ({})</title></line><text class=\"changename\" x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                clock(c.at_s),
                esc(&c.text),
                esc(&c.source),
                x + 2.0,
                TOP + 24.0 + 10.0 * (i % 4) as f64,
                i + 1
            );
        }
        h.push_str("</g>");
    }

    /// A line through `points` (`None` breaks it).
    fn line(&self, h: &mut String, series: &str, colour: &str, dashed: bool, points: &[Option<(f64, f64)>]) {
        let mut d = String::new();
        let mut pen_down = false;
        for p in points {
            match p {
                Some((t, v)) => {
                    let _ = write!(
                        d,
                        "{}{:.1} {:.1}",
                        if pen_down { "L" } else { "M" },
                        self.x(*t),
                        self.y(*v)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = write!(
            h,
            "<path class=\"line{}\" data-series=\"{series}\" stroke=\"{colour}\" d=\"{d}\"/>",
            if dashed { " dash" } else { "" }
        );
    }

    /// One marker per point, carrying its second and value for readers and tests.
    fn markers(&self, h: &mut String, series: &str, colour: &str, unit: &str, points: &[(u64, f64)]) {
        if points.len() > MAX_MARKERS {
            return;
        }
        let _ = write!(h, "<g data-series=\"{series}\" fill=\"{colour}\">");
        for (second, v) in points {
            let t = *second as f64 + 0.5;
            let _ = write!(
                h,
                "<circle data-second=\"{second}\" data-value=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\"><title>{}: {} {unit}</title></circle>",
                number(*v),
                self.x(t),
                self.y(*v),
                clock(*second as f64),
                number(*v)
            );
        }
        h.push_str("</g>");
    }
}

fn legend(h: &mut String, items: &[(&str, &str, &str)]) {
    h.push_str("<p class=\"legend\">");
    for (series, colour, label) in items {
        let _ = write!(
            h,
            "<span data-toggle=\"{series}\"><i style=\"background:{colour}\"></i>{}</span>",
            esc(label)
        );
    }
    h.push_str("</p>");
}

fn rate_chart(h: &mut String, s: &Summary, length: f64) {
    h.push_str("<section id=\"rate\"><h2>Intended versus achieved rate</h2>");
    let ymax = s
        .intended
        .iter()
        .map(|p| p.rps)
        .chain(s.series.iter().map(|p| p.sent.max(p.completed) as f64))
        .fold(1.0, f64::max);
    let chart = Chart::new(260.0, length, ymax * 1.05);
    chart.open(h, "rate-chart", s, "requests/s");
    let intended: Vec<Option<(f64, f64)>> = s.intended.iter().map(|p| Some((p.t_s, p.rps))).collect();
    chart.line(h, "intended", "#1e88e5", true, &intended);
    let per_second = |f: fn(&crate::shared::snapshot::Point) -> f64| -> Vec<(u64, f64)> {
        s.series.iter().map(|p| (p.second, f(p))).collect()
    };
    let sent = per_second(|p| p.sent as f64);
    let completed = per_second(|p| p.completed as f64);
    let as_line = |v: &[(u64, f64)]| -> Vec<Option<(f64, f64)>> {
        v.iter().map(|(sec, v)| Some((*sec as f64 + 0.5, *v))).collect()
    };
    chart.line(h, "completed", "#43a047", false, &as_line(&completed));
    chart.line(h, "sent", "#fb8c00", false, &as_line(&sent));
    chart.markers(h, "sent", "#fb8c00", "sent/s", &sent);
    h.push_str("</svg>");
    legend(
        h,
        &[
            ("intended", "#1e88e5", "intended (rate curves)"),
            ("sent", "#fb8c00", "achieved: sent per second"),
            ("completed", "#43a047", "completed per second"),
        ],
    );
    h.push_str("</section>\n");
}

/// One value of a per-second point.
type PointValue = fn(&crate::shared::snapshot::Point) -> f64;

fn latency_chart(h: &mut String, s: &Summary, length: f64) {
    h.push_str("<section id=\"latency\"><h2>Latency over time</h2>");
    let ymax = s
        .series
        .iter()
        .map(|p| p.p99_ms.max(p.p99_uncorrected_ms))
        .fold(1.0, f64::max);
    let chart = Chart::new(260.0, length, ymax * 1.05);
    chart.open(h, "latency-chart", s, "ms");
    let lines: [(&str, &str, bool, PointValue); 4] = [
        ("p50", "#43a047", false, |p| p.p50_ms),
        ("p95", "#fb8c00", false, |p| p.p95_ms),
        ("p99", "#e53935", false, |p| p.p99_ms),
        ("p99-uncorrected", "#8e24aa", true, |p| p.p99_uncorrected_ms),
    ];
    for (series, colour, dashed, f) in lines {
        let points: Vec<Option<(f64, f64)>> = s
            .series
            .iter()
            .map(|p| (p.completed > 0).then(|| (p.second as f64 + 0.5, f(p))))
            .collect();
        chart.line(h, series, colour, dashed, &points);
    }
    let p99: Vec<(u64, f64)> = s
        .series
        .iter()
        .filter(|p| p.completed > 0)
        .map(|p| (p.second, p.p99_ms))
        .collect();
    chart.markers(h, "p99", "#e53935", "ms p99", &p99);
    h.push_str("</svg>");
    legend(
        h,
        &[
            ("p50", "#43a047", "p50"),
            ("p95", "#fb8c00", "p95"),
            ("p99", "#e53935", "p99 (from the intended send time)"),
            (
                "p99-uncorrected",
                "#8e24aa",
                "p99 uncorrected (from the actual send)",
            ),
        ],
    );
    h.push_str(
        "<p class=\"muted\">Corrected latency counts from when a request was due, so a generator that fell \
         behind still shows the wait; uncorrected counts from when it was sent.</p></section>\n",
    );
}

fn error_charts(h: &mut String, s: &Summary, length: f64) {
    h.push_str("<section id=\"errors\"><h2>Errors</h2>");
    let ymax = s.series.iter().map(|p| p.errors as f64).fold(1.0, f64::max);
    let chart = Chart::new(200.0, length, ymax * 1.05);
    chart.open(h, "errors-chart", s, "errors/s");
    h.push_str("<g data-series=\"errors\" fill=\"#e53935\">");
    let bar = (chart.x(1.0) - chart.x(0.0)).max(0.5);
    for p in s.series.iter().filter(|p| p.errors > 0) {
        let (x, y) = (chart.x(p.second as f64), chart.y(p.errors as f64));
        let _ = write!(
            h,
            "<rect data-second=\"{}\" data-value=\"{}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{:.1}\"><title>{}: {} errors of {}</title></rect>",
            p.second,
            p.errors,
            chart.y(0.0) - y,
            clock(p.second as f64),
            p.errors,
            p.completed
        );
    }
    h.push_str("</g></svg>");

    // Errors by class, one stacked bar per phase, scaled to the phase's requests.
    h.push_str("<h2>Outcomes by class, per phase</h2>");
    let row = 24.0;
    let height = TOP + row * s.phases.len() as f64 + 8.0;
    let _ = write!(
        h,
        "<svg id=\"classes-chart\" viewBox=\"0 0 {WIDTH} {height}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">"
    );
    let (x0, span) = (170.0, WIDTH - 170.0 - RIGHT - 90.0);
    for (i, p) in s.phases.iter().enumerate() {
        let y = TOP + row * i as f64;
        let _ = write!(
            h,
            "<text x=\"4\" y=\"{:.1}\">{}</text>",
            y + 15.0,
            esc(&trim(&p.name, 24))
        );
        let total = p.totals.requests.max(1) as f64;
        let mut x = x0;
        for (class, colour) in CLASS_COLOURS {
            let n = p.totals.classes.get(class).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let w = span * n as f64 / total;
            let _ = write!(
                h,
                "<rect data-class=\"{class}\" data-value=\"{n}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"18\" fill=\"{colour}\"><title>{}: {class} {n}</title></rect>",
                y + 2.0,
                esc(&p.name)
            );
            x += w;
        }
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\">{:.1}% errors</text>",
            x0 + span + 8.0,
            y + 15.0,
            p.totals.error_ratio * 100.0
        );
    }
    h.push_str("</svg><p class=\"legend\">");
    for (class, colour) in CLASS_COLOURS {
        if s.phases.iter().any(|p| p.totals.classes.contains_key(class)) {
            let _ = write!(h, "<span><i style=\"background:{colour}\"></i>{class}</span>");
        }
    }
    h.push_str("</p></section>\n");
}

fn alert_timeline(h: &mut String, s: &Summary, length: f64) {
    let Some(alerts) = &s.alerts else {
        return;
    };
    h.push_str("<section id=\"alerts\"><h2>Alert timeline</h2>");
    if let Some(why) = &alerts.unchecked {
        let _ = write!(
            h,
            "<p class=\"muted\" id=\"alerts-unchecked\">not checked: {}</p>",
            esc(why)
        );
    }
    if let Some(scope) = &alerts.scope {
        let mut text = Vec::new();
        let _ = crate::alerts::scope::write_text(scope, &mut text);
        let text = String::from_utf8_lossy(&text);
        let _ = write!(
            h,
            "<pre id=\"alert-scope\" class=\"muted\">{}</pre>",
            esc(text.trim_end())
        );
    }
    let mut names: Vec<&str> = alerts.transitions.iter().map(|t| t.alert.as_str()).collect();
    names.extend(alerts.checks.iter().map(|c| c.alert.as_str()));
    names.sort_unstable();
    names.dedup();
    // Each row: the alert's whole name on a line of its own, its states on a bar under it, so names of
    // any length stay whole and distinct (SLOErrorBudgetBurnFast and SLOErrorBudgetBurnSlow).
    let row = 36.0;
    let chart = Chart {
        height: TOP + BOTTOM + row * names.len().max(1) as f64,
        length,
        ymax: 1.0,
    };
    let _ = write!(
        h,
        "<svg id=\"alerts-chart\" viewBox=\"0 0 {WIDTH} {}\" xmlns=\"http://www.w3.org/2000/svg\" role=\"img\">",
        chart.height
    );
    for p in &s.phases {
        let _ = write!(
            h,
            "<line class=\"grid\" x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{TOP}\" y2=\"{:.1}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            chart.height - BOTTOM,
            chart.x(p.start_s) + 3.0,
            TOP - 6.0,
            esc(&p.name),
            x = chart.x(p.start_s)
        );
    }
    chart.changes(h, s, chart.height - BOTTOM);
    for (i, name) in names.iter().enumerate() {
        let y = TOP + row * i as f64;
        let _ = write!(
            h,
            "<text class=\"alertname\" data-alert-name=\"\" x=\"{LEFT}\" y=\"{:.1}\">{}</text>",
            y + 12.0,
            esc(name)
        );
        let y = y + 15.0;
        let mine: Vec<_> = alerts.transitions.iter().filter(|t| t.alert == *name).collect();
        for (j, t) in mine.iter().enumerate() {
            let end = mine.get(j + 1).map_or(length, |n| n.at_s);
            let colour = match t.to {
                State::Inactive => continue,
                State::Pending => "#fbc02d",
                State::Firing => "#e53935",
            };
            let state = t.to.as_str();
            let (x0, x1) = (chart.x(t.at_s), chart.x(end));
            let _ = write!(
                h,
                "<rect data-alert=\"{}\" data-state=\"{state}\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"16\" fill=\"{colour}\"><title>{} {state} {}–{}</title></rect>",
                esc(name),
                y + 2.0,
                (x1 - x0).max(1.0),
                esc(name),
                clock(t.at_s),
                clock(end)
            );
        }
        if let Some(d) = &alerts.delivery {
            hops::marks(h, &chart, y, name, d);
        }
    }
    h.push_str(
        "</svg><p class=\"legend\"><span><i style=\"background:#fbc02d\"></i>pending</span>\
                <span><i style=\"background:#e53935\"></i>firing</span>",
    );
    if alerts.delivery.is_some() {
        hops::legend(h);
    }
    h.push_str("</p>");
    if !alerts.checks.is_empty() {
        h.push_str(
            "<table><tr><th>phase</th><th>alert</th><th>expected</th><th>result</th><th>pending after</th>\
             <th>firing after</th><th>resolved after</th><th>predicted</th><th>coverage</th></tr>",
        );
        for c in &alerts.checks {
            let after = |v: Option<f64>| v.map_or("–".to_owned(), |s| format!("{s:.0}s"));
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\" title=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.phase),
                esc(&c.alert),
                c.expect,
                cell_class(c.verdict),
                esc(&c.detail),
                c.verdict.as_str(),
                after(c.pending_after_s),
                after(c.firing_after_s),
                after(c.resolved_after_s),
                c.predicted
                    .as_ref()
                    .map_or("–".to_owned(), |p| esc(&crate::alerts::predicted_text(c.expect, p))),
                c.coverage.map_or("–".to_owned(), |cov| esc(&crate::alerts::coverage_text(&cov)))
            );
        }
        h.push_str("</table>");
    }
    if let Some(d) = &alerts.delivery {
        hops::table(h, d);
    }
    if let Some(note) = &alerts.notifications_skipped {
        let _ = write!(h, "<p class=\"muted\">{}</p>", esc(note));
    }
    h.push_str("</section>\n");
}

fn phase_tables(h: &mut String, s: &Summary) {
    h.push_str(
        "<section id=\"phases\"><h2>Phases</h2><table><tr><th>phase / request</th><th>time</th><th>requests</th>\
         <th>rps</th><th>errors</th><th>p50</th><th>p95</th><th>p99</th><th>max</th><th>p99 uncorr.</th>\
         <th>late</th><th>dropped</th></tr>",
    );
    for p in &s.phases {
        let when = format!("{}–{}", clock(p.start_s), clock(p.end_s));
        figures_row(h, "phase", &p.name, &when, &p.totals);
        if !p.faults.is_empty() {
            let _ = write!(
                h,
                "<tr class=\"sub\"><td colspan=\"12\">faults: {}</td></tr>",
                esc(&p.faults.join(", "))
            );
        }
        if p.requests.len() > 1 {
            for r in &p.requests {
                figures_row(h, "sub", &r.name, "", &r.figures);
            }
        }
    }
    h.push_str("</table></section>\n");
}

fn figures_row(h: &mut String, class: &str, name: &str, when: &str, f: &Figures) {
    let l = &f.latency_ms;
    let _ = write!(
        h,
        "<tr class=\"{class}\"><td>{}</td><td>{when}</td><td>{}</td><td>{:.1}</td><td>{:.1}%</td><td>{}</td><td>{}</td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        esc(name),
        f.requests,
        f.rps,
        f.error_ratio * 100.0,
        ms(l.p50),
        ms(l.p95),
        ms(l.p99),
        ms(l.max),
        ms(f.latency_uncorrected_ms.p99),
        f.late,
        f.dropped
    );
}

/// The changes made live, numbered as the charts mark them.
fn changes(h: &mut String, s: &Summary) {
    if s.changes.is_empty() {
        return;
    }
    h.push_str(
        "<section id=\"changes\"><h2>Changed live</h2><table><tr><th>#</th><th>time</th><th>phase</th>\
         <th>change</th><th>from</th></tr>",
    );
    for (i, c) in s.changes.iter().enumerate() {
        let phase = s.phases.get(c.phase).map_or("", |p| p.name.as_str());
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            clock(c.at_s),
            esc(phase),
            esc(&c.text),
            esc(&c.source)
        );
    }
    h.push_str("</table></section>\n");
}

fn expectations(h: &mut String, s: &Summary) {
    let rows: Vec<_> = s
        .phases
        .iter()
        .flat_map(|p| p.expectations.iter().map(move |e| (&p.name, e)))
        .collect();
    if rows.is_empty() {
        return;
    }
    h.push_str(
        "<section id=\"expectations\"><h2>Expectations</h2><table><tr><th>phase</th><th>expectation</th>\
         <th>observed</th><th>result</th></tr>",
    );
    for (phase, e) in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            esc(phase),
            esc(&e.expectation),
            esc(&e.observed),
            cell_class(e.verdict),
            e.verdict.as_str()
        );
    }
    h.push_str("</table></section>\n");
}

/// The class of the run's verdict badge.
fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass | Verdict::Skipped => "pass",
        Verdict::NotVerified => "unverified",
        Verdict::Fail => "fail",
    }
}

/// The class of a check's result cell.
fn cell_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "ok",
        Verdict::Skipped => "skip",
        Verdict::NotVerified => "unverified",
        Verdict::Fail => "bad",
    }
}

/// Text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn trim(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n - 1).chain(['…']).collect()
    }
}

/// The smallest of 1, 2, 2.5, 5 × 10^k that is at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let base = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * base)
        .find(|c| *c >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * base)
}

fn number(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round())
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2}s", v / 1000.0)
    } else {
        format!("{v:.1}ms")
    }
}

mod hops;

#[cfg(test)]
mod tests;
