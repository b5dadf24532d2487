//! Faults and their checks: JSON round trips, every bad field named, and validation against a
//! brute-force statement of the limits with extreme values.

use proptest::prelude::*;

use super::*;

fn extreme_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(1.0),
        Just(-1.0),
        Just(-0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(1.0 + f64::EPSILON),
        any::<f64>(),
    ]
}

fn extreme_u32() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(64),
        Just(65),
        Just(RateLimitFault::MAX + 1),
        Just(u32::MAX),
        any::<u32>()
    ]
}

fn extreme_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_millis(1)),
        Just(MAX_HOLD),
        Just(MAX_HOLD + Duration::from_millis(1)),
        Just(crate::duration::MAX),
        Just(Duration::MAX),
        any::<u64>().prop_map(Duration::from_secs),
        any::<u64>().prop_map(Duration::from_millis),
    ]
}

fn routes() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop_oneof![Just("/".to_owned()), Just("/health".to_owned()), "\\PC{0,300}"],
        0..3,
    )
}

fn extreme_fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        (any::<u16>(), extreme_f64(), routes()).prop_map(|(status, ratio, routes)| Fault::Error(
            ErrorFault {
                status,
                ratio,
                routes
            }
        )),
        (extreme_duration(), extreme_duration(), extreme_f64(), routes()).prop_map(
            |(delay, jitter, ratio, routes)| Fault::Latency(LatencyFault {
                delay,
                jitter,
                ratio,
                routes
            })
        ),
        (extreme_duration(), extreme_f64(), routes())
            .prop_map(|(hold, ratio, routes)| Fault::Timeout(TimeoutFault { hold, ratio, routes })),
        (extreme_u32(), extreme_f64())
            .prop_map(|(threads, utilization)| Fault::Cpu(CpuFault { threads, utilization })),
        (extreme_u32(), extreme_u32()).prop_map(|(mb_per_second, limit_mb)| Fault::Memory(MemoryFault {
            mb_per_second,
            limit_mb
        })),
        (extreme_f64(), routes()).prop_map(|(ratio, routes)| Fault::Reset(ResetFault { ratio, routes })),
        extreme_duration().prop_map(|duration| Fault::Outage(OutageFault { duration })),
        (extreme_u32(), prop::option::of(extreme_u32()), routes())
            .prop_map(|(rps, burst, routes)| Fault::RateLimit(RateLimitFault { rps, burst, routes })),
    ]
}

/// Whether every value of `fault` is within its documented range (a brute-force restatement of
/// the limits in docs/target-app.md).
fn within_limits(fault: &Fault) -> bool {
    let ratio = (0.0..=1.0).contains(&fault.ratio());
    let routes = fault
        .routes()
        .iter()
        .all(|t| Route::from_template(t).is_some_and(|r| r.faultable()));
    let own = match fault {
        Fault::Error(f) => (400..=599).contains(&f.status),
        Fault::Latency(f) => {
            !(f.delay.is_zero() && f.jitter.is_zero())
                && f.delay.checked_add(f.jitter).is_some_and(|t| t <= MAX_HOLD)
        }
        Fault::Timeout(f) => !f.hold.is_zero() && f.hold <= MAX_HOLD,
        Fault::Cpu(f) => (1..=64).contains(&f.threads) && f.utilization > 0.0 && f.utilization <= 1.0,
        Fault::Memory(f) => (1..=1024).contains(&f.mb_per_second) && (1..=4096).contains(&f.limit_mb),
        Fault::Outage(f) => !f.duration.is_zero() && f.duration <= Duration::from_secs(3600),
        Fault::RateLimit(f) => {
            (1..=RateLimitFault::MAX).contains(&f.rps)
                && f.burst.is_none_or(|b| (1..=RateLimitFault::MAX).contains(&b))
        }
        Fault::Reset(_) | Fault::Downstream(_) => true,
    };
    ratio && routes && own
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn validation_never_panics_and_passes_only_values_within_the_limits(
        faults in prop::collection::vec(extreme_fault(), 0..4),
    ) {
        let spec = ChaosSpec { seed: u64::MAX, faults };
        let errors = spec.validate();
        for (i, fault) in spec.faults.iter().enumerate() {
            let own = format!("faults[{i}].");
            let named = errors.iter().any(|e| e.field.starts_with(&own));
            prop_assert_eq!(!named, within_limits(fault), "{:?}: {:?}", fault, errors);
        }
    }
}

#[test]
fn json_round_trip_uses_text_durations() {
    let json = r#"{"seed":7,"faults":[{"fault":"latency","delay":"800ms","jitter":"200ms","ratio":0.5,"routes":["/slow"]},{"fault":"error","status":503}]}"#;
    let spec: ChaosSpec = serde_json::from_str(json).unwrap();
    assert_eq!(spec.faults.len(), 2);
    assert!(spec.validate().is_empty());
    let back = serde_json::to_string(&spec).unwrap();
    assert!(back.contains(r#""delay":"800ms""#), "{back}");
    assert_eq!(serde_json::from_str::<ChaosSpec>(&back).unwrap(), spec);
}

#[test]
fn unknown_fields_and_kinds_are_refused() {
    assert!(serde_json::from_str::<ChaosSpec>(r#"{"faults":[{"fault":"error","ratoi":0.5}]}"#).is_err());
    assert!(serde_json::from_str::<ChaosSpec>(r#"{"faults":[{"fault":"gremlins"}]}"#).is_err());
}

#[test]
fn validation_names_each_bad_field() {
    let spec: ChaosSpec = serde_json::from_str(
        r#"{"faults":[{"fault":"error","ratio":1.5,"status":200},{"fault":"reset","routes":["/health","/nope"]}]}"#,
    )
    .unwrap();
    let fields: Vec<String> = spec.validate().into_iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        [
            "faults[0].ratio",
            "faults[0].status",
            "faults[1].routes[0]",
            "faults[1].routes[1]"
        ]
    );
}

#[test]
fn every_bad_field_of_one_fault_is_named() {
    let spec: ChaosSpec = serde_json::from_str(
        r#"{"faults":[
            {"fault":"cpu","threads":0,"utilization":0.0},
            {"fault":"memory","mb_per_second":0,"limit_mb":5000},
            {"fault":"rate_limit","rps":0,"burst":0,"routes":["/nope"]}
        ]}"#,
    )
    .unwrap();
    let fields: Vec<String> = spec.validate().into_iter().map(|e| e.field).collect();
    assert_eq!(
        fields,
        [
            "faults[0].threads",
            "faults[0].utilization",
            "faults[1].mb_per_second",
            "faults[1].limit_mb",
            "faults[2].routes[0]",
            "faults[2].rps",
            "faults[2].burst",
        ]
    );
}

#[test]
fn rate_limit_burst_defaults_to_rps() {
    let spec: ChaosSpec = serde_json::from_str(r#"{"faults":[{"fault":"rate_limit","rps":20}]}"#).unwrap();
    let Fault::RateLimit(f) = &spec.faults[0] else {
        panic!("{spec:?}")
    };
    assert_eq!(f.burst(), 20);
    assert!(spec.validate().is_empty());
    assert!(serde_json::from_str::<ChaosSpec>(r#"{"faults":[{"fault":"rate_limit"}]}"#).is_err());
}
