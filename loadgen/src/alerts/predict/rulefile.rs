//! The structure of Prometheus rule files: groups and their rules, which group reads the series
//! another records, and the orders of evaluation a prediction must consider.
//!
//! Prometheus evaluates each rule group on its own timer, so an alert that reads a series recorded in
//! another group sees the value of this evaluation or of the one before, depending on which group ran
//! first. `promtool test rules` likewise runs the groups of one step in an unspecified order unless
//! the test names one (`group_eval_order`). A prediction therefore evaluates two orders on purpose:
//! every group after the groups it reads (recorded values fresh), and every group before them (each
//! recorded value one evaluation old).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::promql;

/// One rule file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RuleFile {
    pub groups: Vec<Group>,
}

/// One rule group. Fields the prediction does not use (`limit`, annotations) are left out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One recording or alerting rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    pub expr: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The groups of every file, in file order; an error names the file that does not read as rules.
pub fn groups(files: &[(String, String)]) -> Result<Vec<Group>, String> {
    let mut all = Vec::new();
    for (name, text) in files {
        let file: RuleFile = serde_norway::from_str(text).map_err(|e| format!("{name}: {e}"))?;
        all.extend(file.groups);
    }
    Ok(all)
}

/// The group names in the orders to evaluate: first each group after the groups whose recorded
/// series it reads (ties in file order), then the reverse. One order when the two are the same.
pub fn orders(groups: &[Group]) -> Vec<Vec<String>> {
    let mut names: Vec<&str> = Vec::new();
    for g in groups {
        if !names.contains(&g.name.as_str()) {
            names.push(&g.name);
        }
    }
    // reads[i]: the groups whose recorded series group i reads.
    let recorded = |name: &str| -> Vec<&str> {
        groups
            .iter()
            .filter(|g| g.name == name)
            .flat_map(|g| g.rules.iter().filter_map(|r| r.record.as_deref()))
            .collect()
    };
    let reads: Vec<Vec<usize>> = names
        .iter()
        .map(|name| {
            let used: Vec<String> = groups
                .iter()
                .filter(|g| g.name == *name)
                .flat_map(|g| g.rules.iter().flat_map(|r| promql::series_names(&r.expr)))
                .collect();
            (0..names.len())
                .filter(|&j| {
                    names[j] != *name && recorded(names[j]).iter().any(|r| used.iter().any(|u| u == r))
                })
                .collect()
        })
        .collect();
    let mut fresh: Vec<usize> = Vec::with_capacity(names.len());
    while fresh.len() < names.len() {
        let next = (0..names.len())
            .filter(|i| !fresh.contains(i))
            .find(|&i| reads[i].iter().all(|j| fresh.contains(j)))
            // A cycle: take the first group left, in file order.
            .or_else(|| (0..names.len()).find(|i| !fresh.contains(i)))
            .expect("a group is left");
        fresh.push(next);
    }
    let fresh: Vec<String> = fresh.into_iter().map(|i| names[i].to_owned()).collect();
    let stale: Vec<String> = fresh.iter().rev().cloned().collect();
    if fresh == stale {
        vec![fresh]
    } else {
        vec![fresh, stale]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_rules_are_evaluated_recording_first_and_alerts_first() {
        let rules = super::super::Rules::stack();
        let groups = groups(&rules.files).unwrap();
        assert_eq!(groups.len(), 4);
        let orders = orders(&groups);
        assert_eq!(
            orders,
            [
                [
                    "golden-signals",
                    "slo-availability",
                    "service-alerts",
                    "slo-alerts"
                ],
                [
                    "slo-alerts",
                    "service-alerts",
                    "slo-availability",
                    "golden-signals"
                ],
            ]
        );
    }

    #[test]
    fn a_chain_of_groups_is_ordered_by_what_each_reads() {
        let text = "groups:\n- name: alerts\n  rules:\n  - alert: A\n    expr: b:x > 1\n    for: 1m\n- name: b\n  rules:\n  - record: b:x\n    expr: sum(a:x)\n- name: a\n  rules:\n  - record: a:x\n    expr: up\n";
        let groups = groups(&[("r.yml".into(), text.into())]).unwrap();
        assert_eq!(groups[0].rules[0].for_.as_deref(), Some("1m"));
        assert_eq!(orders(&groups), [["a", "b", "alerts"], ["alerts", "b", "a"]]);
        let one = "groups:\n- name: only\n  rules:\n  - record: a:x\n    expr: up\n";
        assert_eq!(
            orders(&super::groups(&[("r.yml".into(), one.into())]).unwrap()),
            [["only"]]
        );
    }

    #[test]
    fn a_file_that_is_not_rules_is_named() {
        let e = groups(&[("bad.yml".into(), "groups: 3".into())]).unwrap_err();
        assert!(e.starts_with("bad.yml: "), "{e}");
    }
}
