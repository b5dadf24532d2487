//! The alert side of a run: before the load, the prediction, the Prometheus to ask (given, or a private
//! one for the embedded target with a private Alertmanager beside it), loadgen's webhook receiver and
//! the run's alert scope; after it, the checks, the notifications' delivery and the predicted times,
//! gathered into the [`AlertReport`]. Says on stderr what it starts and what it skips.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use super::plan::RunPlan;
use crate::alerts::alertmanager::{AmError, LocalAlertmanager};
use crate::alerts::predict::{PredictError, Prediction};
use crate::alerts::prometheus::LocalPrometheus;
use crate::alerts::scope::Scope;
use crate::alerts::watch::Watched;
use crate::alerts::{self, AlertReport};
use crate::client::{Api, BadTarget};
use crate::cmd::run::embedded::Embedded;
use crate::shared::Timeline;
use crate::shared::{Transition, Verdict};

/// How long the end of a run waits for the rest of a flush whose notification has arrived.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// [`Alerting::settle`] for `receiver` and the receivers of `--alertmanager-config` (`plans`).
async fn settle(receiver: &Receiver, plans: &[crate::alerts::routing::ReceiverPlan]) {
    if plans.is_empty() {
        return;
    }
    let deadline = Instant::now() + SETTLE;
    while !receiver.flushes_whole(plans) && Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// loadgen's webhook receiver, serving while the run goes on.
pub(super) struct Receiver {
    pub(super) inbox: crate::alerts::notify::Inbox,
    /// Where Alertmanager reaches it (a loopback address when it listens on all of them).
    webhook: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub(super) fn new(listener: tokio::net::TcpListener) -> Receiver {
        let mut addr = listener
            .local_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let inbox = crate::alerts::notify::Inbox::new(Instant::now());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(crate::alerts::notify::serve(listener, inbox.clone(), stop_rx));
        Receiver {
            inbox,
            webhook: format!("http://{addr}/alerts"),
            stop,
            task,
        }
    }

    /// Where Alertmanager reaches it.
    pub(super) fn webhook(&self) -> &str {
        &self.webhook
    }

    /// Whether every firing notification to a receiver of `plans` has the messages of its flush.
    fn flushes_whole(&self, plans: &[crate::alerts::routing::ReceiverPlan]) -> bool {
        let got = self.inbox.snapshot();
        got.notifications
            .iter()
            .filter(|n| n.status == crate::alerts::notify::Status::Firing)
            .all(|n| {
                plans
                    .iter()
                    .find(|p| p.name == n.receiver)
                    .is_none_or(|p| crate::alerts::snapshot::missing(&got.rendered, p, n.at_s).is_empty())
            })
    }

    /// Stops serving and returns what was received.
    fn stop(&self) -> crate::alerts::notify::Received {
        let _ = self.stop.send(true);
        self.task.abort();
        self.inbox.snapshot()
    }
}

/// The task asking the private Alertmanager's API, its record and the switch that stops it.
type AmPoller = (
    Arc<std::sync::Mutex<crate::alerts::amstate::AmStates>>,
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
);

/// Everything set up to check a run's alerts.
pub(super) struct Alerting {
    prediction: Option<Result<Prediction, PredictError>>,
    pub(super) receiver: Option<Receiver>,
    prometheus_url: Option<String>,
    /// The Prometheus to ask and the alerts that count, when alerts are checked.
    pub(super) checked: Option<(Arc<Api>, Arc<Scope>)>,
    local_prometheus: Option<LocalPrometheus>,
    local_alertmanager: Option<LocalAlertmanager>,
    /// Why the alert expectations are not checked, when they are not.
    pub(super) alerts_skipped: Option<String>,
    notifications_skipped: Option<String>,
    /// The receivers of `--alertmanager-config` and what of them is captured (empty without it).
    pub(super) receivers: Vec<crate::alerts::routing::ReceiverPlan>,
    /// What the private Alertmanager's API says during the run, and the task that asks it.
    am_states: Option<AmPoller>,
}

impl Alerting {
    /// Predicts the alerts, then starts or finds what checks them. A `--prometheus` that cannot be
    /// asked with the run's client options is an error.
    pub(super) async fn start(
        plan: &RunPlan,
        target_url: &str,
        embedded: Option<&Embedded>,
        mut receiver: Option<Receiver>,
    ) -> Result<Alerting, BadTarget> {
        let options = &plan.alerts;
        let quiet = plan.outputs.quiet;
        // Made before Prometheus and the load start so promtool competes with neither (a few seconds).
        let wants_alerts = plan.wants_alerts() && !options.skip_alerts;
        let prediction = if wants_alerts || options.prometheus.is_some() {
            if !quiet {
                eprintln!("loadgen: predicting the alerts (promtool)");
            }
            let private = options.prometheus.is_none();
            Some(
                crate::alerts::predict::live::start(plan.scenario.clone(), options.rules.as_deref(), private)
                    .await,
            )
        } else {
            None
        };

        let mut local_prometheus = None;
        let mut local_alertmanager = None;
        let mut alerts_skipped = None;
        let mut notifications_skipped = None;
        let mut receivers = Vec::new();
        let prometheus_url = match (&options.prometheus, wants_alerts, embedded) {
            (Some(url), _, _) => Some(url.clone()),
            (None, true, Some(e)) => {
                let mut alertmanager = options.alertmanager.clone();
                if alertmanager.is_none()
                    && !options.skip_notifications
                    && crate::alerts::prometheus::installed()
                {
                    match start_alertmanager(&mut receiver, options.alertmanager_config.as_deref()).await {
                        Ok((am, plans)) => {
                            if !quiet {
                                let whose = match &options.alertmanager_config {
                                    Some(path) => format!("the routing of {}", path.display()),
                                    None => "the stack's routing".to_owned(),
                                };
                                eprintln!(
                                    "loadgen: notifications go through a private Alertmanager at {} with {whose}",
                                    am.url
                                );
                            }
                            for p in &plans {
                                if !p.not_captured.is_empty() {
                                    eprintln!(
                                        "loadgen: receiver `{}`: {} not captured (no HTTP endpoint to point \
                                         at loadgen), removed from the private Alertmanager",
                                        p.name,
                                        p.not_captured.join(", ")
                                    );
                                }
                            }
                            receivers = plans;
                            alertmanager = Some(am.addr.clone());
                            local_alertmanager = Some(am);
                        }
                        Err(e) => notifications_skipped = Some(format!("notification checks skipped: {e}")),
                    }
                }
                match LocalPrometheus::start(
                    &[("target-app", e.app), ("downstream", e.downstream)],
                    options.rules.as_deref(),
                    alertmanager.as_deref(),
                )
                .await
                {
                    Ok(p) => {
                        let url = p.url.clone();
                        if !quiet {
                            eprintln!(
                                "loadgen: alert checks use a private Prometheus at {url} with the stack's \
                                 rules"
                            );
                        }
                        local_prometheus = Some(p);
                        Some(url)
                    }
                    Err(e) => {
                        alerts_skipped = Some(format!("alert checks skipped: {e}"));
                        None
                    }
                }
            }
            (None, true, None) => {
                alerts_skipped =
                    Some("alert checks skipped: no --prometheus given for this target".to_owned());
                None
            }
            (None, false, _) => None,
        };
        let api = match &prometheus_url {
            Some(url) => Some(Arc::new(Api::new(url, &plan.peers.prometheus, &options.auth)?)),
            None => None,
        };
        // Which alerts count for this run, decided before it starts.
        let checked = match api {
            Some(api) => {
                let private = local_prometheus.is_some();
                let scope = alert_scope(plan, &api, target_url, embedded, private).await;
                Some((api, Arc::new(scope)))
            }
            None => None,
        };
        if let Some(note) = &alerts_skipped {
            eprintln!("loadgen: {note}");
        }
        if prometheus_url.is_some()
            && receiver.is_none()
            && notifications_skipped.is_none()
            && !options.skip_notifications
            && plan.wants_notified()
        {
            notifications_skipped = Some(
                "notification checks skipped: no --notify-listen given for this Alertmanager".to_owned(),
            );
        }
        if prometheus_url.is_none() {
            notifications_skipped = None;
        }
        if let Some(note) = &notifications_skipped {
            eprintln!("loadgen: {note}");
        }
        Ok(Alerting {
            prediction,
            receiver,
            prometheus_url,
            checked,
            local_prometheus,
            local_alertmanager,
            alerts_skipped,
            notifications_skipped,
            receivers,
            am_states: None,
        })
    }

    /// Whether the alerts were predicted (and so are predicted again after each live change).
    pub(super) fn predicts(&self) -> bool {
        matches!(self.prediction, Some(Ok(_)))
    }

    /// Starts asking the Alertmanager's API which alerts it holds and which are inhibited, timed from
    /// `start` (when there is one, and alerts are checked).
    /// Without a private Alertmanager, the one `options` names is asked: `--alertmanager-api`, or the
    /// `--alertmanager` (`host:port`) the private Prometheus sends to.
    pub(super) fn watch_alertmanager(&mut self, start: Instant, options: &super::plan::AlertOptions) {
        let url = match (
            &self.local_alertmanager,
            &options.alertmanager_api,
            &options.alertmanager,
        ) {
            (Some(am), _, _) => am.url.clone(),
            (None, Some(api), _) => api.clone(),
            (None, None, Some(addr)) if self.local_prometheus.is_some() => format!("http://{addr}"),
            _ => return,
        };
        let Some((_, scope)) = &self.checked else {
            return;
        };
        let Ok(api) = Api::new(
            &url,
            &crate::client::Options::default(),
            &crate::client::Auth::None,
        ) else {
            return;
        };
        let states = Arc::default();
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(crate::alerts::amstate::watch(
            api,
            scope.clone(),
            start,
            Arc::clone(&states),
            stop_rx,
        ));
        self.am_states = Some((states, stop, task));
    }

    /// The predicted alert changes, for the live panel (none without a prediction).
    pub(super) fn predicted(&self) -> Vec<Transition> {
        crate::alerts::predict::live::transitions(&self.prediction)
    }

    /// Waits, at most [`SETTLE`], until each firing notification to a receiver of
    /// `--alertmanager-config` has the other messages of its flush: Alertmanager sends a flush to each
    /// of a receiver's configurations on its own, so the last can arrive after loadgen's webhook
    /// heard of it.
    pub(super) async fn settle(&self) {
        if let Some(receiver) = &self.receiver {
            settle(receiver, &self.receivers).await;
        }
    }

    /// Stops the receiver and the private Prometheus and Alertmanager, and judges what `watched` saw
    /// (when alerts were checked) against the scenario and the `timeline` the engine returned. Every
    /// alert expectation gets a check: judged, NOT VERIFIED with the reason it could not be, or SKIPPED
    /// when the options asked for that.
    pub(super) fn finish(
        self,
        plan: &RunPlan,
        watched: Option<Watched>,
        timeline: &Timeline,
    ) -> Option<AlertReport> {
        let scenario = &plan.scenario;
        let options = &plan.alerts;
        let received = self.receiver.map(|r| (r.stop(), r.webhook));
        let am_states = self.am_states.map(|(states, stop, task)| {
            let _ = stop.send(true);
            task.abort();
            let states = states.lock().unwrap_or_else(|e| e.into_inner()).clone();
            states
        });
        let alertmanager_name = self
            .local_alertmanager
            .as_ref()
            .map_or_else(|| "external".to_owned(), |am| am.url.clone());
        let scope = self.checked.map(|(_, scope)| scope);
        let Some(watched) = watched else {
            if !plan.wants_alerts() {
                return None;
            }
            let (verdict, why) = match (&self.alerts_skipped, options.skip_alerts) {
                (_, true) => (Verdict::Skipped, "skipped by request (--no-alerts)".to_owned()),
                (Some(why), false) => (Verdict::NotVerified, why.clone()),
                (None, false) => (Verdict::NotVerified, "no Prometheus was asked".to_owned()),
            };
            let mut checks = alerts::unmade(scenario, verdict, &why);
            let notify_verdict = if options.skip_notifications {
                Verdict::Skipped
            } else {
                verdict
            };
            checks.extend(crate::alerts::delivery::unmade(scenario, notify_verdict, &why));
            checks.extend(crate::alerts::routed::unmade(scenario, notify_verdict, &why));
            return Some(AlertReport {
                prometheus: String::new(),
                unchecked: Some(why),
                scope: None,
                transitions: Vec::new(),
                known: Vec::new(),
                checks,
                failed_polls: 0,
                delivery: None,
                notifications_skipped: None,
            });
        };
        let observed = watched.observations;
        let mut checks = alerts::check(scenario, timeline, &observed);
        let delivery = match (received, scope.as_ref()) {
            (Some((received, webhook)), Some(scope)) => {
                let scoped = crate::alerts::delivery::in_scope(&received.notifications, scope);
                checks.extend(crate::alerts::delivery::check(scenario, timeline, &scoped));
                checks.extend(crate::alerts::routed::check(
                    scenario,
                    timeline,
                    &scoped,
                    am_states.as_ref(),
                ));
                checks.extend(super::snapshots::check(
                    scenario,
                    timeline,
                    &scoped,
                    &received.rendered,
                    &self.receivers,
                    &options.snapshot_dir,
                    options.update_snapshots,
                ));
                let mut d = crate::alerts::delivery::delivery(
                    scenario,
                    timeline,
                    &observed.transitions,
                    received,
                    &scoped,
                    alertmanager_name,
                    webhook,
                );
                d.receivers = self.receivers;
                Some(d)
            }
            _ => {
                let (verdict, why) = match &self.notifications_skipped {
                    _ if options.skip_notifications => (
                        Verdict::Skipped,
                        "skipped by request (--no-notifications)".to_owned(),
                    ),
                    Some(why) => (Verdict::NotVerified, why.clone()),
                    None => (
                        Verdict::NotVerified,
                        "no notification receiver listened".to_owned(),
                    ),
                };
                checks.extend(crate::alerts::delivery::unmade(scenario, verdict, &why));
                checks.extend(crate::alerts::routed::unmade(scenario, verdict, &why));
                None
            }
        };
        if let Some(why) = &watched.first_failure {
            eprintln!(
                "loadgen: {} of the polls of Prometheus failed; the first: {why}",
                observed.failed.len()
            );
        }
        let mut report = AlertReport {
            prometheus: self.prometheus_url.clone().unwrap_or_default(),
            unchecked: None,
            checks,
            failed_polls: observed.failed.len() as u64,
            transitions: observed.transitions,
            known: observed.known,
            scope: Some(watched.scope),
            delivery,
            notifications_skipped: self.notifications_skipped,
        };
        if let Some(scope) = &scope {
            crate::alerts::scope::unverify_checks(scope, &mut report.checks);
        }
        if let Some(Ok(p)) = self.prediction {
            crate::alerts::predict::live::annotate(&mut report, scenario, p);
        }
        drop(self.local_prometheus);
        drop(self.local_alertmanager);
        Some(report)
    }
}

/// A private Alertmanager delivering to `receiver` (one on a free loopback port if none listens yet),
/// with the stack's routing, or `config`'s rewritten to send every receiver to `receiver` (with what
/// each receiver sends captured).
async fn start_alertmanager(
    receiver: &mut Option<Receiver>,
    config: Option<&std::path::Path>,
) -> Result<(LocalAlertmanager, Vec<crate::alerts::routing::ReceiverPlan>), AmError> {
    if crate::alerts::alertmanager::binary().is_none() {
        return Err(AmError::NotInstalled);
    }
    if receiver.is_none() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(AmError::Listen)?;
        *receiver = Some(Receiver::new(listener));
    }
    let webhook = receiver.as_ref().map(|r| r.webhook.clone()).unwrap_or_default();
    let base = webhook.trim_end_matches("/alerts");
    let am = match config {
        None => LocalAlertmanager::start(base).await?,
        Some(path) => LocalAlertmanager::start_config(crate::alerts::routing::load(path, base)?).await?,
    };
    let plans = am.receivers.clone();
    Ok((am, plans))
}

/// How long a Prometheus may take to list the target among its scrape targets.
const SCOPE_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// The alerts that count for this run: `--alert-match`; the private Prometheus' own job for the
/// embedded target; otherwise the job and instance Prometheus' targets give the target's address.
async fn alert_scope(
    plan: &RunPlan,
    api: &Api,
    target_url: &str,
    embedded: Option<&Embedded>,
    private: bool,
) -> Scope {
    let scope = match (&plan.alerts.alert_match, embedded) {
        (Some(matchers), _) => Scope::from_flag(matchers),
        (None, Some(e)) if private => Scope::private("target-app", &e.app.to_string()),
        (None, _) => {
            crate::alerts::scope::from_targets(api, target_url, SCOPE_WAIT, |why| {
                eprintln!("loadgen: waiting up to {SCOPE_WAIT:?} for Prometheus to list the target: {why}");
            })
            .await
        }
    };
    match &scope.problem {
        Some(problem) => eprintln!("loadgen: warning: every alert check will fail: {problem}"),
        None if !plan.outputs.quiet => eprintln!(
            "loadgen: alerts count for this run when their labels match {}",
            scope.describe().join(" or ")
        ),
        None => {}
    }
    if let Some(note) = &scope.note {
        eprintln!("loadgen: note: {note}");
    }
    scope
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::alerts::notify::tests::FIRING;
    use crate::alerts::routing::ReceiverPlan;

    #[tokio::test(start_paused = true)]
    async fn the_end_of_a_run_waits_for_the_rest_of_a_flush_and_no_longer() {
        let receiver = Receiver::new(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
        let inbox = receiver.inbox.clone();
        // FIRING is a notification to the receiver `loadgen`, which also sends to Slack and PagerDuty.
        let plan = ReceiverPlan {
            name: "loadgen".into(),
            captured: vec![
                ("slack".into(), "/receivers/loadgen/slack".into()),
                ("pagerduty".into(), "/receivers/loadgen/pagerduty".into()),
            ],
            not_captured: vec![],
        };
        let plans = std::slice::from_ref(&plan);
        let message = |kind: &str| inbox.keep_rendered("loadgen".into(), kind.into(), b"{}", Instant::now());
        inbox.take(FIRING.as_bytes(), Instant::now()).unwrap();
        message("slack");
        assert!(!receiver.flushes_whole(plans));

        // PagerDuty's message comes 300 ms after the webhook's: the wait ends with it.
        let late = inbox.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            late.keep_rendered("loadgen".into(), "pagerduty".into(), b"{}", Instant::now());
        });
        let t = Instant::now();
        settle(&receiver, plans).await;
        let waited = t.elapsed();
        assert!(receiver.flushes_whole(plans));
        assert!(
            (Duration::from_millis(300)..=Duration::from_millis(320)).contains(&waited),
            "{waited:?}"
        );

        // Another flush, seconds later, whose messages never come: the wait gives up at SETTLE.
        tokio::time::sleep(Duration::from_secs(5)).await;
        inbox.take(FIRING.as_bytes(), Instant::now()).unwrap();
        let t = Instant::now();
        settle(&receiver, plans).await;
        let waited = t.elapsed();
        assert!(
            (SETTLE..=SETTLE + Duration::from_millis(20)).contains(&waited),
            "{waited:?}"
        );

        // Without --alertmanager-config nothing is captured, and nothing is waited for.
        let t = Instant::now();
        settle(&receiver, &[]).await;
        assert_eq!(t.elapsed(), Duration::ZERO);
    }
}
