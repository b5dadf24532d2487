//! Real CPU and allocation work for `/generate-load`, in a few well-named stages so a flame graph of
//! the service reads like a story: parse a catalog, price baskets, rank recommendations, render a report.
//!
//! Each stage gets an equal share of the time budget and its own span. The functions are
//! `#[inline(never)]` so profiles keep their names; the results are returned so nothing is optimised away.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// What the work produced, so the answer shows it was done.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub products_parsed: u64,
    pub baskets_priced: u64,
    pub rankings: u64,
    pub report_bytes: u64,
}

/// Works for about `budget` of CPU time on the calling thread.
pub fn generate_load(budget: Duration) -> Report {
    let mut report = Report::default();
    let share = budget / 4;
    stage("catalog.parse", share, || {
        report.products_parsed += parse_catalog(200) as u64
    });
    let catalog = build_catalog(200);
    stage("basket.price", share, || {
        report.baskets_priced += price_baskets(&catalog, 50)
    });
    stage("recommendations.rank", share, || {
        report.rankings += rank_recommendations(&catalog) as u64
    });
    stage("report.render", share, || {
        report.report_bytes += render_report(&catalog).len() as u64
    });
    report
}

/// Repeats `step` for `share` of time inside a child span named `name`.
fn stage(name: &'static str, share: Duration, mut step: impl FnMut()) {
    let span = tracing::info_span!(
        target: "target_app::work",
        "work",
        otel.name = name,
        work.rounds = tracing::field::Empty
    );
    let _entered = span.enter();
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed() < share || rounds == 0 {
        step();
        rounds += 1;
    }
    span.record("work.rounds", rounds);
}

#[derive(Clone)]
struct Product {
    sku: String,
    price_cents: u64,
    rating: f64,
    tags: Vec<String>,
}

fn catalog_text(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "sku-{i:05},{},{:.2},tag{};tag{}\n",
                100 + (i * 7919) % 9000,
                (i % 50) as f64 / 10.0,
                i % 7,
                i % 11
            )
        })
        .collect()
}

/// Formats and parses a CSV catalog of `n` products.
#[inline(never)]
fn parse_catalog(n: usize) -> usize {
    std::hint::black_box(build_catalog(n)).len()
}

fn build_catalog(n: usize) -> Vec<Product> {
    catalog_text(n)
        .lines()
        .filter_map(|line| {
            let mut cols = line.split(',');
            Some(Product {
                sku: cols.next()?.to_owned(),
                price_cents: cols.next()?.parse().ok()?,
                rating: cols.next()?.parse().ok()?,
                tags: cols.next()?.split(';').map(str::to_owned).collect(),
            })
        })
        .collect()
}

/// Prices `baskets` baskets with discounts and tax, in floating point.
#[inline(never)]
fn price_baskets(catalog: &[Product], baskets: u64) -> u64 {
    let mut priced = 0;
    for b in 0..baskets {
        let mut total = 0.0f64;
        for (i, p) in catalog
            .iter()
            .enumerate()
            .filter(|(i, _)| (*i as u64 + b) % 3 == 0)
        {
            let discount = 1.0 - (p.rating / 50.0).min(0.2);
            let qty = 1 + (i as u64 % 4);
            total += p.price_cents as f64 * qty as f64 * discount * 1.0825;
        }
        if std::hint::black_box(total) > 0.0 {
            priced += 1;
        }
    }
    priced
}

/// Scores and sorts the catalog for a few customer profiles.
#[inline(never)]
fn rank_recommendations(catalog: &[Product]) -> usize {
    let mut ranked = 0;
    for profile in 0..4u64 {
        let mut scored: Vec<(u64, &Product)> = catalog
            .iter()
            .map(|p| {
                let affinity = p.tags.iter().map(|t| t.len() as u64 * (profile + 1)).sum::<u64>();
                let score = crate::chaos::state::mix(affinity ^ p.price_cents) % 10_000;
                (score, p)
            })
            .collect();
        scored.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.sku.cmp(&b.1.sku)));
        ranked += std::hint::black_box(scored.iter().take(10).count());
    }
    ranked
}

/// Renders an HTML report of the catalog.
#[inline(never)]
fn render_report(catalog: &[Product]) -> String {
    let mut html = String::from("<table>");
    for p in catalog {
        html.push_str(&format!(
            "<tr><td>{}</td><td>{:.2}</td><td>{}</td></tr>",
            p.sku,
            p.price_cents as f64 / 100.0,
            p.tags.join(" ")
        ));
    }
    html.push_str("</table>");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn does_every_stage() {
        let r = generate_load(Duration::from_millis(8));
        assert!(
            r.products_parsed >= 200 && r.baskets_priced > 0 && r.rankings > 0 && r.report_bytes > 0,
            "{r:?}"
        );
    }
}
