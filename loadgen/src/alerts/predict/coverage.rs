//! `loadgen coverage`: every alerting rule against every scenario. A rule is covered when some scenario
//! expects it to fire (`alerts_firing` or `alerts_resolved`) and the prediction agrees; the report also
//! names the rules that fire somewhere without being checked, expectations the prediction
//! contradicts, and expectations that name no rule at all.
//!
//! Pure: it works from predictions already made and writes to any `io::Write`.

use std::io::{self, Write};

use serde::Serialize;

use super::{Contradiction, Prediction};
use crate::scenario::Scenario;

/// One scenario's relation to one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    /// Expected to fire, and predicted to.
    Covered,
    /// Expected to fire, but not predicted to.
    ExpectedOnly,
    /// Predicted to fire, not checked by the scenario.
    PredictedOnly,
    /// Neither.
    None,
}

impl Cell {
    fn mark(self) -> &'static str {
        match self {
            Cell::Covered => "X",
            Cell::ExpectedOnly => "!",
            Cell::PredictedOnly => "o",
            Cell::None => ".",
        }
    }
}

/// One scenario's row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub file: String,
    /// One cell per rule, in [`Coverage::rules`] order.
    pub cells: Vec<Cell>,
    pub contradictions: Vec<Contradiction>,
}

/// An expectation naming an alert that no rule defines.
#[derive(Debug, Clone, Serialize)]
pub struct Unknown {
    pub scenario: String,
    pub alert: String,
}

/// The whole matrix.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub rules: Vec<String>,
    pub rows: Vec<Row>,
    /// Rules no scenario both expects and is predicted to make fire.
    pub uncovered: Vec<String>,
    /// Rules predicted to fire somewhere but expected by no scenario.
    pub unchecked: Vec<String>,
    pub unknown_expectations: Vec<Unknown>,
}

impl Coverage {
    /// Whether every rule is covered and no prediction contradicts an expectation.
    pub fn strict_ok(&self) -> bool {
        self.uncovered.is_empty() && self.rows.iter().all(|r| r.contradictions.is_empty())
    }
}

/// Builds the matrix from each scenario, its file and its prediction and contradictions.
pub fn build(rules: &[String], items: &[(Scenario, String, Prediction, Vec<Contradiction>)]) -> Coverage {
    let mut rows = Vec::new();
    let mut unknown = Vec::new();
    for (s, file, p, contradictions) in items {
        let expected = |rule: &str| {
            s.phases.iter().any(|ph| {
                ph.expect.alerts_firing.iter().any(|a| a == rule)
                    || ph.expect.alerts_resolved.iter().any(|a| a == rule)
            })
        };
        let cells = rules
            .iter()
            .map(|rule| {
                let fires = p.alert(rule).is_some_and(|a| a.fires());
                match (expected(rule), fires) {
                    (true, true) => Cell::Covered,
                    (true, false) => Cell::ExpectedOnly,
                    (false, true) => Cell::PredictedOnly,
                    (false, false) => Cell::None,
                }
            })
            .collect();
        for ph in &s.phases {
            let e = &ph.expect;
            for alert in e
                .alerts_firing
                .iter()
                .chain(&e.alerts_inactive)
                .chain(&e.alerts_resolved)
            {
                if !rules.contains(alert)
                    && !unknown
                        .iter()
                        .any(|u: &Unknown| u.scenario == s.name && u.alert == *alert)
                {
                    unknown.push(Unknown {
                        scenario: s.name.clone(),
                        alert: alert.clone(),
                    });
                }
            }
        }
        rows.push(Row {
            scenario: s.name.clone(),
            file: file.clone(),
            cells,
            contradictions: contradictions.clone(),
        });
    }
    let column = |i: usize| rows.iter().map(move |r: &Row| r.cells[i]);
    let uncovered = (0..rules.len())
        .filter(|i| !column(*i).any(|c| c == Cell::Covered))
        .map(|i| rules[i].clone())
        .collect();
    let unchecked = (0..rules.len())
        .filter(|i| column(*i).any(|c| c == Cell::PredictedOnly) && !column(*i).any(|c| c == Cell::Covered))
        .map(|i| rules[i].clone())
        .collect();
    Coverage {
        rules: rules.to_vec(),
        rows,
        uncovered,
        unchecked,
        unknown_expectations: unknown,
    }
}

/// Writes the matrix (rules down, scenarios across) and the lists under it.
pub fn write_text(c: &Coverage, out: &mut impl Write) -> io::Result<()> {
    let width = c.rules.iter().map(String::len).max().unwrap_or(4).max(4);
    writeln!(out, "scenarios:")?;
    for (i, r) in c.rows.iter().enumerate() {
        writeln!(out, "  {:>2}  {} ({})", i + 1, r.scenario, r.file)?;
    }
    writeln!(out)?;
    let header: String = (1..=c.rows.len()).map(|i| format!("{i:>3}")).collect();
    writeln!(out, "  {:<width$} {header}   covered", "rule")?;
    for (j, rule) in c.rules.iter().enumerate() {
        let cells: String = c
            .rows
            .iter()
            .map(|r| format!("{:>3}", r.cells[j].mark()))
            .collect();
        let covered = c.rows.iter().filter(|r| r.cells[j] == Cell::Covered).count();
        let verdict = if covered > 0 {
            format!("yes ({covered})")
        } else {
            "NO".to_owned()
        };
        writeln!(out, "  {rule:<width$} {cells}   {verdict}")?;
    }
    writeln!(
        out,
        "  X expected and predicted to fire, ! expected but not predicted, o fires unchecked, . neither"
    )?;
    let covered = c.rules.len() - c.uncovered.len();
    writeln!(out, "\n{covered} of {} alerting rules covered", c.rules.len())?;
    if !c.uncovered.is_empty() {
        writeln!(
            out,
            "uncovered (no scenario expects them and makes them fire): {}",
            c.uncovered.join(", ")
        )?;
    }
    if !c.unchecked.is_empty() {
        writeln!(out, "fire but are never checked: {}", c.unchecked.join(", "))?;
    }
    for u in &c.unknown_expectations {
        writeln!(
            out,
            "{}: expects `{}`, which no rule defines",
            u.scenario, u.alert
        )?;
    }
    for r in &c.rows {
        for x in &r.contradictions {
            writeln!(
                out,
                "{}: phase {} expects {} {}, but {}",
                x.at, x.phase, x.alert, x.expect, x.predicted
            )?;
        }
    }
    Ok(())
}
