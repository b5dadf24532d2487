use super::*;

fn changes(expr: &str) -> Vec<(String, String)> {
    expr_mutants(expr, &["a:ratio_rate1m".into(), "a:ratio_rate30s".into()])
}

fn find<'a>(list: &'a [(String, String)], op: &str) -> Vec<&'a str> {
    list.iter()
        .filter(|(o, _)| o == op)
        .map(|(_, e)| e.as_str())
        .collect()
}

#[test]
fn thresholds_scale_and_comparisons_flip() {
    let c = changes("job:x:ratio > 0.10");
    assert_eq!(find(&c, "threshold x0.5"), ["job:x:ratio > 0.05"]);
    assert_eq!(find(&c, "threshold x2"), ["job:x:ratio > 0.2"]);
    assert_eq!(find(&c, "threshold x1.1"), ["job:x:ratio > 0.11"]);
    assert_eq!(find(&c, "comparison flipped"), ["job:x:ratio < 0.10"]);
    let c = changes("a > (14.4 * 0.01)");
    assert_eq!(find(&c, "threshold x0.9"), ["a > (14.4 * 0.01) * 0.9"]);
    let c = changes("0.5 <= bool a");
    assert_eq!(find(&c, "threshold x2"), ["1 <= bool a"]);
    assert_eq!(find(&c, "comparison flipped"), ["0.5 >= bool a"]);
}

#[test]
fn windows_scale_and_swap_between_the_sides_of_an_and() {
    let c = changes("sum(rate(x[1m:10s])) / sum(rate(y[30s]))");
    assert_eq!(
        find(&c, "window x0.5"),
        [
            "sum(rate(x[30s:10s])) / sum(rate(y[30s]))",
            "sum(rate(x[1m:10s])) / sum(rate(y[15s]))"
        ]
    );
    assert_eq!(
        find(&c, "window x2")[0],
        "sum(rate(x[2m:10s])) / sum(rate(y[30s]))"
    );
    let c = changes("a:ratio_rate1m > 0.2\nand\na:ratio_rate30s > 0.1");
    assert_eq!(
        find(&c, "windows swapped"),
        ["a:ratio_rate30s > 0.2\nand\na:ratio_rate1m > 0.1"]
    );
    assert_eq!(
        find(&c, "and -> or"),
        ["a:ratio_rate1m > 0.2\nor\na:ratio_rate30s > 0.1"]
    );
    // A swap to a series no rule records is no mutant.
    assert!(find(
        &changes("a:ratio_rate1m > 1 and a:ratio_rate6m > 1"),
        "windows swapped"
    )
    .is_empty());
}

#[test]
fn set_operators_change_and_unless_drops_its_operand() {
    let c = changes("(a unless on(job) b) or c");
    assert_eq!(find(&c, "unless dropped"), ["(a ) or c"]);
    assert_eq!(find(&c, "or -> and"), ["(a unless on(job) b) and c"]);
    assert_eq!(find(&changes("a unless b and c"), "unless dropped"), ["a  and c"]);
}

#[test]
fn each_label_matcher_is_dropped_in_turn() {
    let c = changes(r#"rate(x{route!~"/a,/b", status=~"5.."}[1m]) + up{job="j"} + {__name__="m"}"#);
    assert_eq!(
        find(&c, "matcher dropped"),
        [
            r#"rate(x{status=~"5.."}[1m]) + up{job="j"} + {__name__="m"}"#,
            r#"rate(x{route!~"/a,/b"}[1m]) + up{job="j"} + {__name__="m"}"#,
            r#"rate(x{route!~"/a,/b", status=~"5.."}[1m]) + up{} + {__name__="m"}"#,
        ]
    );
}

#[test]
fn the_stack_rules_give_mutants_for_every_alert_and_none_equivalent() {
    let rules = Rules::stack();
    let mutants = generate(&rules);
    for alert in &rules.alerts {
        let mine: Vec<&Mutant> = mutants.iter().filter(|m| m.alert == *alert).collect();
        assert!(mine.len() >= 5, "{alert}: {} mutants", mine.len());
        assert!(mine.iter().any(|m| m.operator.starts_with("for ")), "{alert}");
    }
    // HighErrorRate reads a chain of recording rules: their mutants count for it.
    assert!(mutants.iter().any(|m| m.alert == "HighErrorRate"
        && m.operator == "matcher dropped in job_route:http_request_errors:rate1m"));
    // Swapping the windows of the burn-rate pair with one threshold on both sides selects the same.
    assert!(!mutants.iter().any(|m| m.operator == "windows swapped"));
    let file = mutant_file(&rules.groups, &mutants);
    let text = serde_norway::to_string(&file).unwrap();
    let groups = super::super::rulefile::groups(&[("m.yml".into(), text)]).unwrap();
    let alerts: Vec<&str> = groups
        .iter()
        .flat_map(|g| g.rules.iter().filter_map(|r| r.alert.as_deref()))
        .collect();
    assert_eq!(alerts.len(), mutants.len());
    assert!(groups.iter().all(|g| g.name.ends_with("__mutants")));
    // A mutant of a recording rule reads through renamed copies up to its alert.
    let m = mutants
        .iter()
        .position(|m| m.alert == "HighErrorRate" && m.rule == "job_route_status:http_requests:rate1m")
        .expect("a mutant of the first rule of the chain");
    let alert = groups
        .iter()
        .flat_map(|g| &g.rules)
        .find(|r| r.alert.as_deref() == Some(&format!("HighErrorRate__mutant{m}")))
        .unwrap();
    assert_eq!(
        alert.expr,
        format!("job:http_request_errors:ratio_rate1m__mutant{m} > 0.10")
    );
}
