//! loadgen's webhook receiver against hostile bodies sent over a real socket, and against the real
//! thing: Debian's Alertmanager, configured with the stack's routing as loadgen configures its private
//! one, delivering an alert posted to its API, then its resolution. Needs `prometheus-alertmanager` and
//! `amtool` (`scripts/test.sh` installs them); about 25 seconds, mostly the stack's `group_wait` and
//! `group_interval`.

use std::net::SocketAddr;
use std::time::Duration;

use loadgen::alerts::alertmanager::{private_config, LocalAlertmanager, STACK_CONFIG, STACK_TEMPLATE};
use loadgen::alerts::notify::{serve, Inbox, Received, Status, MAX_BODY};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// A receiver on a free loopback port.
async fn receiver() -> (SocketAddr, Inbox, watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let inbox = Inbox::new(Instant::now());
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(serve(listener, inbox.clone(), stop_rx));
    (addr, inbox, stop)
}

/// Sends raw bytes, then reads the answer until the server closes: (status, body).
async fn exchange(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // A server that answers before reading everything may reset the rest: the answer still counts.
    let _ = s.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn post(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST /alerts HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

const VALID: &str = r#"{"version":"4","groupKey":"{}:{alertname=\"A\"}","status":"firing","receiver":"r",
"groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://x","truncatedAlerts":0,
"alerts":[{"status":"firing","labels":{"alertname":"A","job":"j"},"annotations":{},
"startsAt":"2026-12-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"f"}]}"#;

#[tokio::test]
async fn the_receiver_refuses_what_is_not_a_notification_and_keeps_serving() {
    let (addr, inbox, _stop) = receiver().await;
    assert_eq!(exchange(addr, &post(VALID.as_bytes())).await.0, 200);

    let huge = vec![b'{'; MAX_BODY + 1];
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("empty body", post(b""), 400, "not JSON"),
        ("truncated JSON", post(&VALID.as_bytes()[..100]), 400, "not JSON"),
        (
            "binary garbage",
            post(&[0xff, 0xfe, 0x00, 0x9c, 0x80]),
            400,
            "not JSON",
        ),
        ("a JSON string", post(b"\"4\""), 400, "not JSON"),
        (
            "version 3",
            post(VALID.replace(r#""version":"4""#, r#""version":"3""#).as_bytes()),
            400,
            "`version`",
        ),
        (
            "deeply nested",
            post(format!("{}{}", "[".repeat(5000), "]".repeat(5000)).as_bytes()),
            400,
            "not JSON",
        ),
        ("over the size limit, declared", post(&huge), 400, "larger than"),
        (
            "over the size limit, chunked",
            {
                let mut r = b"POST /alerts HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                    .to_vec();
                for _ in 0..3 {
                    r.extend_from_slice(format!("{:x}\r\n", MAX_BODY / 2).as_bytes());
                    r.extend(std::iter::repeat_n(b' ', MAX_BODY / 2));
                    r.extend_from_slice(b"\r\n");
                }
                r.extend_from_slice(b"0\r\n\r\n");
                r
            },
            400,
            "larger than",
        ),
        (
            "another method",
            b"PUT /alerts HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
            405,
            "POST",
        ),
    ];
    for (what, request, status, message) in &cases {
        let (got, body) = exchange(addr, request).await;
        assert_eq!(got, *status, "{what}: {body}");
        assert!(
            body.contains(message),
            "{what}: {body:?} should contain {message:?}"
        );
    }
    // A body that never completes (the client goes away) is no notification and no crash.
    {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let head = b"POST /alerts HTTP/1.1\r\nhost: x\r\ncontent-length: 500\r\n\r\n{\"version\"";
        s.write_all(head).await.unwrap();
    }

    // Still serving, and the record says what happened.
    assert_eq!(exchange(addr, &post(VALID.as_bytes())).await.0, 200);
    let (status, listed) = exchange(addr, b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    assert_eq!(status, 200);
    let listed: Received = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.notifications.len(), 2);
    let refused = cases.iter().filter(|c| c.2 == 400).count() as u64;
    let r = inbox.snapshot();
    assert_eq!(r.notifications.len(), 2);
    assert!(
        r.rejected >= refused,
        "{} refused, {refused} expected",
        r.rejected
    );
    assert_eq!(r.notifications[0].alerts[0].labels["job"], "j");
}

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(binary).is_file()))
}

#[test]
fn amtool_accepts_the_private_configuration() {
    assert!(
        on_path("amtool"),
        "amtool is needed: apt-get install -y prometheus-alertmanager"
    );
    let dir = std::env::temp_dir().join(format!("loadgen-amtool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(dir.join("templates/slack.tmpl"), STACK_TEMPLATE).unwrap();
    let file = dir.join("alertmanager.yml");
    std::fs::write(
        &file,
        private_config(STACK_CONFIG, "http://127.0.0.1:9", &dir)
            .unwrap()
            .text,
    )
    .unwrap();
    let out = std::process::Command::new("amtool")
        .arg("check-config")
        .arg(&file)
        .output()
        .expect("run amtool");
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("SUCCESS") && text.contains("2 inhibit rules") && text.contains("1 templates"),
        "{text}"
    );
}

/// RFC 3339 for a time `ago` before now.
fn rfc3339(ago: Duration) -> String {
    let mut out = String::new();
    target_app::telemetry::logs::rfc3339(std::time::SystemTime::now() - ago, &mut out);
    out
}

async fn wait_for(
    inbox: &Inbox,
    status: Status,
    limit: Duration,
) -> Option<loadgen::alerts::notify::Notification> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(n) = inbox
            .snapshot()
            .notifications
            .into_iter()
            .find(|n| n.status == status)
        {
            return Some(n);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_alertmanager_with_the_stack_routing_delivers_firing_then_resolved() {
    assert!(
        loadgen::alerts::alertmanager::binary().is_some(),
        "Alertmanager is needed: apt-get install -y prometheus-alertmanager"
    );
    let (addr, inbox, _stop) = receiver().await;
    let am = LocalAlertmanager::start(&format!("http://{addr}")).await.unwrap();
    let am_addr: SocketAddr = am.addr.parse().unwrap();
    let alert = |ends: Option<String>| {
        let ends = ends.map_or(String::new(), |e| format!(",\"endsAt\":\"{e}\""));
        let body = format!(
            "[{{\"labels\":{{\"alertname\":\"HighErrorRate\",\"job\":\"target-app\",\"severity\":\"page\"}},\
             \"annotations\":{{\"summary\":\"test\"}},\"startsAt\":\"{}\"{ends}}}]",
            rfc3339(Duration::from_secs(30))
        );
        let mut r = format!(
            "POST /api/v2/alerts HTTP/1.1\r\nhost: {am_addr}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body.as_bytes());
        r
    };

    let (status, body) = exchange(am_addr, &alert(None)).await;
    assert_eq!(status, 200, "{body}");
    // group_wait is 5s in the stack's routing.
    let firing = wait_for(&inbox, Status::Firing, Duration::from_secs(20))
        .await
        .expect("a firing notification within 20s");
    assert_eq!(firing.receiver, "page", "the stack's receiver of critical alerts");
    assert!(
        firing
            .group_key
            .ends_with(":{alertname=\"HighErrorRate\", job=\"target-app\"}"),
        "{}",
        firing.group_key
    );
    assert_eq!(firing.alerts.len(), 1);
    assert_eq!(firing.alerts[0].alert, "HighErrorRate");
    assert_eq!(firing.alerts[0].labels["severity"], "page");

    let (status, body) = exchange(am_addr, &alert(Some(rfc3339(Duration::from_secs(1))))).await;
    assert_eq!(status, 200, "{body}");
    // group_interval is 15s.
    let resolved = wait_for(&inbox, Status::Resolved, Duration::from_secs(30))
        .await
        .expect("a resolved notification within 30s");
    assert_eq!(resolved.group_key, firing.group_key);
    assert_eq!(resolved.alerts[0].status, Status::Resolved);
    assert!(resolved.at_s > firing.at_s);
    assert_eq!(
        inbox.snapshot().rejected,
        0,
        "Alertmanager's own bodies all pass validation"
    );
    drop(am);
}
