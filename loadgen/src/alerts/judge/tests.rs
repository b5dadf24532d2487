use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

/// One poll of the alert `A`: answered with its state, or failed.
#[derive(Debug, Clone, Copy)]
struct Poll {
    t: f64,
    answer: Option<State>,
}

fn book(polls: &[Poll], stop: f64) -> Observations {
    let mut book = Book::default();
    for p in polls {
        match p.answer {
            Some(state) => {
                let mut states = BTreeMap::new();
                if state != State::Inactive {
                    states.insert("A".to_owned(), state);
                }
                book.answered(p.t, &states);
            }
            None => book.failed(p.t),
        }
    }
    book.finish(stop)
}

fn answered(t: f64, state: State) -> Poll {
    Poll {
        t,
        answer: Some(state),
    }
}

fn failed(t: f64) -> Poll {
    Poll { t, answer: None }
}

/// Polls every second from `from` to `to`, all answered with `state`.
fn steady(from: u32, to: u32, state: State) -> Vec<Poll> {
    (from..=to).map(|t| answered(f64::from(t), state)).collect()
}

use State::{Firing, Inactive, Pending};

#[test]
fn every_poll_failed_nothing_passes() {
    let polls: Vec<Poll> = (0..=21).map(|t| failed(f64::from(t))).collect();
    let obs = book(&polls, 21.0);
    for expect in [Expect::Inactive, Expect::Firing, Expect::Resolved] {
        let j = judge(&obs, "A", expect, 0.0, 20.0);
        assert_eq!(j.verdict, Verdict::NotVerified, "{expect:?}: {}", j.detail);
    }
    let j = judge(&obs, "A", Expect::Inactive, 0.0, 20.0);
    assert_eq!(j.coverage.covered, 0.0);
    assert_eq!(j.coverage.failed_polls, 21);
    assert_eq!(j.coverage.longest_gap_s, 20.0);
}

#[test]
fn prometheus_gone_a_third_into_the_phase_leaves_inactive_not_verified() {
    let mut polls = steady(0, 10, Inactive);
    polls.extend((11..=31).map(|t| failed(f64::from(t))));
    let obs = book(&polls, 31.0);
    let j = judge(&obs, "A", Expect::Inactive, 0.0, 30.0);
    assert_eq!(j.verdict, Verdict::NotVerified, "{}", j.detail);
    // The last answer (at 10 s) vouches for one poll interval: 11 s of 30 are known.
    assert!(
        (j.coverage.covered - 11.0 / 30.0).abs() < 1e-9,
        "{:?}",
        j.coverage
    );
    assert_eq!(j.coverage.longest_gap_s, 19.0);
    // The same outage after the phase does not touch it.
    let j = judge(&obs, "A", Expect::Inactive, 0.0, 10.0);
    assert_eq!(j.verdict, Verdict::Pass, "{}", j.detail);
}

#[test]
fn a_firing_seen_passes_whatever_was_missed_and_a_whole_phase_without_one_fails() {
    let mut polls = steady(0, 5, Inactive);
    polls.extend((6..=9).map(|t| failed(f64::from(t))));
    polls.extend(steady(10, 12, Pending));
    polls.extend(steady(13, 20, Firing));
    let obs = book(&polls, 20.0);
    let j = judge(&obs, "A", Expect::Firing, 0.0, 20.0);
    assert_eq!(j.verdict, Verdict::Pass);
    assert_eq!((j.pending_after_s, j.firing_after_s), (Some(10.0), Some(13.0)));

    let obs = book(&steady(0, 20, Pending), 20.0);
    let j = judge(&obs, "A", Expect::Firing, 0.0, 20.0);
    assert_eq!(j.verdict, Verdict::Fail);
    assert_eq!(j.detail, "pending 0.0s after the phase started, never firing");
}

#[test]
fn a_state_seen_at_the_first_poll_after_the_phase_still_counts_for_it() {
    let mut polls = steady(0, 20, Inactive);
    polls.push(answered(21.0, Firing));
    let obs = book(&polls, 21.0);
    assert_eq!(judge(&obs, "A", Expect::Firing, 0.0, 20.0).verdict, Verdict::Pass);
    // ... but not against `inactive`, which is about the phase itself.
    assert_eq!(
        judge(&obs, "A", Expect::Inactive, 0.0, 20.0).verdict,
        Verdict::Pass
    );
}

#[test]
fn resolved_needs_a_firing_first() {
    let obs = book(&steady(0, 20, Inactive), 20.0);
    let j = judge(&obs, "A", Expect::Resolved, 0.0, 20.0);
    assert_eq!(j.verdict, Verdict::Fail);
    assert_eq!(j.detail, "never fired during the run, so it cannot have resolved");

    // Fired in the phase before, resolved in this one.
    let mut polls = steady(0, 9, Inactive);
    polls.extend(steady(10, 29, Firing));
    polls.extend(steady(30, 40, Inactive));
    let obs = book(&polls, 40.0);
    let j = judge(&obs, "A", Expect::Resolved, 20.0, 40.0);
    assert_eq!(j.verdict, Verdict::Pass, "{}", j.detail);
    assert_eq!(j.resolved_after_s, Some(10.0));

    // Never seen firing while Prometheus was away before the phase: not verified.
    let mut polls: Vec<Poll> = (0..10).map(|t| failed(f64::from(t))).collect();
    polls.extend(steady(10, 20, Inactive));
    let obs = book(&polls, 20.0);
    assert_eq!(
        judge(&obs, "A", Expect::Resolved, 10.0, 20.0).verdict,
        Verdict::NotVerified
    );
}

#[test]
fn resolved_fails_on_a_state_still_active_at_the_end_and_needs_the_end_known() {
    let mut polls = steady(0, 9, Inactive);
    polls.extend(steady(10, 22, Firing));
    let obs = book(&polls, 22.0);
    let j = judge(&obs, "A", Expect::Resolved, 0.0, 20.0);
    assert_eq!(
        (j.verdict, j.detail.as_str()),
        (Verdict::Fail, "still firing at the end of the phase")
    );

    let mut polls = steady(0, 9, Firing);
    polls.extend(steady(10, 12, Inactive));
    polls.extend((13..=22).map(|t| failed(f64::from(t))));
    let obs = book(&polls, 22.0);
    assert_eq!(
        judge(&obs, "A", Expect::Resolved, 0.0, 20.0).verdict,
        Verdict::NotVerified
    );
}

#[test]
fn an_answer_vouches_until_the_next_within_two_intervals_else_for_one() {
    let polls = [
        answered(0.0, Inactive),
        answered(2.0, Inactive),
        failed(3.0),
        answered(5.5, Inactive),
        answered(6.0, Inactive),
    ];
    let obs = book(&polls, 9.0);
    let spans: Vec<(f64, f64)> = obs.known.iter().map(|s| (s.from_s, s.to_s)).collect();
    assert_eq!(spans, [(0.0, 3.0), (5.5, 7.0)]);
    assert_eq!(obs.failed, [3.0]);
}

#[test]
fn the_book_keeps_only_changes() {
    let obs = book(
        &[
            answered(0.0, Inactive),
            answered(1.0, Pending),
            answered(2.0, Pending),
            answered(3.0, Firing),
            answered(4.0, Inactive),
        ],
        4.0,
    );
    let changes: Vec<(f64, State)> = obs.transitions.iter().map(|t| (t.at_s, t.to)).collect();
    assert_eq!(changes, [(1.0, Pending), (3.0, Firing), (4.0, Inactive)]);
}

// The brute-force reference: Prometheus' answer at every instant of a fine grid, straight from the
// polls, without the book's spans or the judge's transitions.

/// The answered poll that vouches for `x`, if any.
fn vouching(polls: &[Poll], stop: f64, x: f64) -> Option<State> {
    let answers: Vec<&Poll> = polls.iter().filter(|p| p.answer.is_some()).collect();
    let i = answers.iter().rposition(|p| p.t <= x)?;
    let p = answers[i];
    let until = match answers.get(i + 1) {
        Some(q) if q.t - p.t <= MAX_GAP_S => q.t,
        Some(_) => p.t + POLL_S,
        None if stop - p.t <= MAX_GAP_S => stop.max(p.t),
        None => p.t + POLL_S,
    };
    (x <= until).then_some(p.answer?)
}

fn grid(a: f64, b: f64) -> Vec<f64> {
    let mut points = vec![a];
    let mut x = (a * 8.0).ceil() / 8.0;
    while x < b {
        points.push(x);
        x += 0.125;
    }
    points.push(b);
    points
}

fn reference(polls: &[Poll], stop: f64, expect: Expect, from: f64, to: f64) -> Verdict {
    let at = |x: f64| vouching(polls, stop, x);
    let whole = |a: f64, b: f64| grid(a, b).into_iter().all(|x| at(x).is_some());
    match expect {
        Expect::Firing => {
            if grid(from, to + SLACK_S)
                .into_iter()
                .any(|x| at(x) == Some(Firing))
            {
                Verdict::Pass
            } else if whole(from, to) {
                Verdict::Fail
            } else {
                Verdict::NotVerified
            }
        }
        Expect::Inactive => {
            if grid(from, to)
                .into_iter()
                .any(|x| at(x).is_some_and(|s| s >= Pending))
            {
                Verdict::Fail
            } else if whole(from, to) {
                Verdict::Pass
            } else {
                Verdict::NotVerified
            }
        }
        Expect::Resolved => {
            let Some(end) = grid(to, to + SLACK_S)
                .into_iter()
                .rev()
                .find(|x| at(*x).is_some())
            else {
                return Verdict::NotVerified;
            };
            let first = polls.first().map_or(0.0, |p| p.t).min(0.0);
            if at(end) != Some(Inactive) {
                Verdict::Fail
            } else if grid(first, end)
                .into_iter()
                .any(|x| x < end && at(x) == Some(Firing))
            {
                Verdict::Pass
            } else if whole(0.0, to) {
                Verdict::Fail
            } else {
                Verdict::NotVerified
            }
        }
    }
}

fn quarters(n: std::ops::RangeInclusive<u32>) -> impl Strategy<Value = f64> {
    n.prop_map(|q| f64::from(q) / 4.0)
}

fn polls() -> impl Strategy<Value = (Vec<Poll>, f64)> {
    let poll = (
        1u32..=16,
        prop_oneof![
            3 => Just(None),
            3 => Just(Some(Inactive)),
            2 => Just(Some(Pending)),
            2 => Just(Some(Firing)),
        ],
    );
    (
        quarters(0..=2),
        prop::collection::vec(poll, 0..40),
        quarters(0..=12),
    )
        .prop_map(|(start, steps, tail)| {
            let mut t = start - 0.25;
            let polls: Vec<Poll> = steps
                .into_iter()
                .map(|(gap, answer)| {
                    t += f64::from(gap) / 4.0;
                    Poll { t, answer }
                })
                .collect();
            (polls, t + tail)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_judge_agrees_with_the_brute_force_reference(
        (polls, stop) in polls(),
        from in quarters(0..=120),
        len in quarters(1..=80),
    ) {
        let obs = book(&polls, stop);
        let to = from + len;
        for expect in [Expect::Firing, Expect::Inactive, Expect::Resolved] {
            let judged = judge(&obs, "A", expect, from, to);
            prop_assert_eq!(
                judged.verdict,
                reference(&polls, stop, expect, from, to),
                "{:?} over {}..{}: {}", expect, from, to, judged.detail
            );
            // Never a PASS of `inactive` without the whole phase known, never a FAIL of `firing` on a
            // phase that is not.
            let whole = judged.coverage.whole();
            match (expect, judged.verdict) {
                (Expect::Inactive, Verdict::Pass) | (Expect::Firing, Verdict::Fail) => prop_assert!(whole),
                _ => {}
            }
            prop_assert!(judged.verdict != Verdict::Skipped);
        }
    }
}
