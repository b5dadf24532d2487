//! loadgen against a server nobody here wrote: Debian's nginx, started on loopback ports with its own
//! configuration per test. Certificates are made at test time with `openssl` (a CA, a server
//! certificate for localhost and 127.0.0.1, a client certificate). Every count loadgen reports is
//! checked against nginx's own access log, which records the protocol and status of each request that
//! really arrived.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{read_report, scenario_file};

/// An nginx serving `return 200` on one port, per the given `listen` parameters and extra directives.
struct Nginx {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    /// `listen` is what follows `listen 127.0.0.1:PORT` (e.g. `ssl http2`); `server` goes inside the
    /// server block; `http` inside the http block.
    fn start(name: &str, listen: &str, server: &str, http: &str) -> Nginx {
        let dir = std::env::temp_dir().join(format!("loadgen-nginx-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = format!(
            r#"worker_processes 1;
error_log {dir}/logs/error.log warn;
pid {dir}/nginx.pid;
daemon off;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {dir}/tmp-body;
    proxy_temp_path {dir}/tmp-proxy;
    fastcgi_temp_path {dir}/tmp-fastcgi;
    uwsgi_temp_path {dir}/tmp-uwsgi;
    scgi_temp_path {dir}/tmp-scgi;
    log_format peer '$server_protocol $status $request_uri';
    access_log {dir}/logs/access.log peer;
    {http}
    server {{
        listen 127.0.0.1:{port} {listen};
        {server}
        location / {{ return 200 "ok\n"; }}
    }}
}}
"#,
            dir = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let mut child = Command::new(nginx_binary())
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx (apt-get install nginx)");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Nginx { child, dir, port };
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
        let error_log = std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default();
        panic!("nginx did not start on port {port}: {error_log}");
    }

    /// `(protocol, status)` of every request nginx logged.
    fn access_log(&self) -> Vec<(String, u16)> {
        // nginx writes the access log line before the answer leaves, so it is complete by now.
        std::fs::read_to_string(self.dir.join("logs/access.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let mut parts = l.split(' ');
                let protocol = parts.next().unwrap_or_default().to_owned();
                let status = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                (protocol, status)
            })
            .collect()
    }

    fn count(&self, protocol: &str, status: u16) -> u64 {
        self.access_log()
            .iter()
            .filter(|(p, s)| p == protocol && *s == status)
            .count() as u64
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master then stops its worker, which would otherwise outlive it.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..250 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx_binary() -> &'static str {
    if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    }
}

/// A CA, a server certificate for `localhost` and `127.0.0.1` signed by it, and a client certificate
/// signed by it, as PEM files in a directory of their own.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn make(name: &str) -> Certs {
        let dir = std::env::temp_dir().join(format!("loadgen-certs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ext = dir.join("server.ext");
        std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        let steps: [&[&str]; 8] = [
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=loadgen test CA",
            ],
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "client.key",
                "-out",
                "client.csr",
                "-subj",
                "/CN=loadgen client",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "client.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "client.pem",
                "-days",
                "2",
                "-extfile",
                "client.ext",
            ],
            // The same client key in an X.509 v1 certificate: what `openssl x509 -req` makes without an
            // extensions file.
            &[
                "x509",
                "-req",
                "-in",
                "client.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "client-v1.pem",
                "-days",
                "2",
            ],
            // A second CA that signed nothing the server presents: trusting it must not help.
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "other.key",
                "-out",
                "other.pem",
                "-days",
                "2",
                "-subj",
                "/CN=other CA",
            ],
            &["version"],
        ];
        for args in steps {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Certs { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn server_directives(&self) -> String {
        format!(
            "ssl_certificate {}; ssl_certificate_key {};",
            self.path("server.pem"),
            self.path("server.key")
        )
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a run reported.
struct Run {
    code: Option<i32>,
    report: serde_json::Value,
    output: String,
}

impl Run {
    fn totals(&self) -> &serde_json::Value {
        &self.report["phases"][0]["totals"]
    }

    fn class(&self, name: &str) -> u64 {
        self.totals()["classes"][name].as_u64().unwrap_or(0)
    }

    fn requests(&self) -> u64 {
        self.totals()["requests"].as_u64().unwrap_or(0)
    }

    fn protocol(&self, name: &str) -> u64 {
        self.totals()["protocols"][name].as_u64().unwrap_or(0)
    }
}

/// Runs a one-phase scenario at `rps` for `seconds` against `url` with `flags`.
fn run(name: &str, url: &str, rps: u32, seconds: u32, flags: &[&str]) -> Run {
    let load = format!("rate = {{ shape = \"constant\", rps = {rps} }}");
    run_scenario(name, url, "", &load, seconds, flags)
}

/// Runs a one-phase scenario of `seconds` against `url` with `flags`: one request to `/` with the
/// `mix` lines added, paced by `load` (a phase's `rate = ...` or `concurrency = N`).
fn run_scenario(name: &str, url: &str, mix: &str, load: &str, seconds: u32, flags: &[&str]) -> Run {
    let file = scenario_file(
        &format!("peer-{name}"),
        &format!(
            r#"name = "{name}"
[defaults]
timeout = "5s"
[[mix]]
path = "/"
{mix}
[[phases]]
name = "steady"
duration = "{seconds}s"
{load}
"#
        ),
    );
    let json = file.with_extension("json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("run")
        .arg(&file)
        .args(["--target", url, "--quiet", "--json"])
        .arg(&json)
        .args(flags)
        .env_remove("CHAOS_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run loadgen");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    assert!(
        !report.is_null(),
        "no report (exit {:?}):\n{output}",
        out.status.code()
    );
    Run {
        code: out.status.code(),
        report,
        output,
    }
}

#[test]
fn https_with_a_private_ca_is_verified_and_every_request_arrives() {
    let certs = Certs::make("cacert");
    let nginx = Nginx::start("cacert", "ssl", &certs.server_directives(), "");
    let url = format!("https://localhost:{}", nginx.port);
    let r = run("cacert", &url, 50, 2, &["--cacert", &certs.path("ca.pem")]);
    assert_eq!(r.code, Some(0), "{}", r.output);
    assert_eq!(r.class("ok"), 100, "{}", r.totals());
    assert_eq!(nginx.count("HTTP/1.1", 200), 100, "nginx saw every request once");
    let handshakes = &r.totals()["handshakes"];
    assert!(handshakes["connections"].as_u64().unwrap() >= 1, "{}", r.totals());
    assert!(handshakes["time_ms"]["max"].as_f64().unwrap() > 0.0);
    assert_eq!(r.protocol("HTTP/1.1"), 100);
}

#[test]
fn an_untrusted_certificate_is_a_tls_failure_with_a_way_out() {
    let certs = Certs::make("untrusted");
    let nginx = Nginx::start("untrusted", "ssl", &certs.server_directives(), "");
    let url = format!("https://127.0.0.1:{}", nginx.port);
    // Trusting another CA does not make the server's certificate trusted.
    let r = run("untrusted", &url, 20, 1, &["--cacert", &certs.path("other.pem")]);
    assert_eq!(
        r.code,
        Some(0),
        "no expectations, so the run itself passes: {}",
        r.output
    );
    assert_eq!(r.class("tls"), 20, "{}", r.totals());
    assert_eq!(r.class("connect"), 0);
    assert!(r.output.contains("TLS handshake with 127.0.0.1"), "{}", r.output);
    assert!(r.output.contains("--cacert"), "says what to do: {}", r.output);
    assert_eq!(nginx.access_log().len(), 0, "no request got through");

    // --insecure skips verification, and says so.
    let r = run("insecure", &url, 20, 1, &["--insecure"]);
    assert_eq!(r.class("ok"), 20, "{}", r.totals());
    assert!(r.output.contains("not verified"), "{}", r.output);
    assert_eq!(nginx.count("HTTP/1.1", 200), 20);
}

#[test]
fn a_client_certificate_opens_a_server_that_requires_one() {
    let certs = Certs::make("mtls");
    let server = format!(
        "{} ssl_client_certificate {}; ssl_verify_client on;",
        certs.server_directives(),
        certs.path("ca.pem")
    );
    let nginx = Nginx::start("mtls", "ssl", &server, "");
    let url = format!("https://localhost:{}", nginx.port);
    let ca = certs.path("ca.pem");
    let r = run(
        "mtls",
        &url,
        20,
        1,
        &[
            "--cacert",
            &ca,
            "--cert",
            &certs.path("client.pem"),
            "--key",
            &certs.path("client.key"),
        ],
    );
    assert_eq!(r.class("ok"), 20, "{}\n{}", r.totals(), r.output);
    assert_eq!(nginx.count("HTTP/1.1", 200), 20);

    // The same key in a version 1 certificate, as curl and nginx take it.
    let r = run(
        "mtls-v1",
        &url,
        20,
        1,
        &[
            "--cacert",
            &ca,
            "--cert",
            &certs.path("client-v1.pem"),
            "--key",
            &certs.path("client.key"),
        ],
    );
    assert_eq!(r.class("ok"), 20, "{}\n{}", r.totals(), r.output);
    assert_eq!(nginx.count("HTTP/1.1", 200), 40);

    // Without it nginx answers 400 (its own record agrees).
    let r = run("mtls-none", &url, 20, 1, &["--cacert", &ca]);
    assert_eq!(r.class("http_4xx"), 20, "{}", r.totals());
    assert_eq!(nginx.count("HTTP/1.1", 400), 20);

    // A --cert without --key is a usage error before anything is sent.
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "x.toml", "--cert", &certs.path("client.pem")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--key"));
}

#[test]
fn http2_by_alpn_and_by_prior_knowledge() {
    let certs = Certs::make("h2");
    let tls = Nginx::start("h2-tls", "ssl http2", &certs.server_directives(), "");
    let url = format!("https://localhost:{}", tls.port);
    let r = run(
        "h2-alpn",
        &url,
        100,
        2,
        &["--cacert", &certs.path("ca.pem"), "--http2"],
    );
    assert_eq!(r.class("ok"), 200, "{}\n{}", r.totals(), r.output);
    assert_eq!(r.protocol("HTTP/2"), 200, "{}", r.totals());
    assert_eq!(tls.count("HTTP/2.0", 200), 200, "{:?}", tls.access_log().first());
    // Many streams, few connections: one is enough for 100 rps.
    assert!(
        r.totals()["handshakes"]["connections"].as_u64().unwrap() <= 2,
        "{}",
        r.totals()
    );

    // Without --http2 the same server is spoken to in HTTP/1.1.
    let r = run("h1-alpn", &url, 20, 1, &["--cacert", &certs.path("ca.pem")]);
    assert_eq!(r.protocol("HTTP/1.1"), 20, "{}", r.totals());
    assert_eq!(tls.count("HTTP/1.1", 200), 20);

    let clear = Nginx::start("h2c", "http2", "", "");
    let url = format!("http://127.0.0.1:{}", clear.port);
    let r = run("h2c", &url, 100, 1, &["--http2-prior-knowledge"]);
    assert_eq!(r.protocol("HTTP/2"), 100, "{}\n{}", r.totals(), r.output);
    assert_eq!(clear.count("HTTP/2.0", 200), 100);
}

#[test]
fn a_short_keep_alive_timeout_costs_no_errors() {
    // The server closes idle connections after 1 s; requests come once a second, right at the edge.
    let nginx = Nginx::start("keepalive-1s", "", "keepalive_timeout 1s;", "");
    let r = run(
        "keepalive-1s",
        &format!("http://127.0.0.1:{}", nginx.port),
        1,
        30,
        &[],
    );
    assert_eq!(r.requests(), 30, "{}", r.totals());
    assert_eq!(r.class("ok"), 30, "no invented errors: {}", r.totals());
    assert_eq!(nginx.count("HTTP/1.1", 200), 30, "nginx answered each once");
}

#[test]
fn servers_that_close_after_n_requests_or_every_answer_cost_no_errors() {
    let nginx = Nginx::start("requests-2", "", "keepalive_requests 2;", "");
    let r = run(
        "requests-2",
        &format!("http://127.0.0.1:{}", nginx.port),
        200,
        5,
        &[],
    );
    assert_eq!(r.class("ok"), 1000, "{}", r.totals());
    assert_eq!(nginx.count("HTTP/1.1", 200), 1000);

    let close = Nginx::start("close", "", "keepalive_timeout 0;", "");
    let r = run("close", &format!("http://127.0.0.1:{}", close.port), 100, 5, &[]);
    assert_eq!(r.class("ok"), 500, "{}", r.totals());
    assert_eq!(close.count("HTTP/1.1", 200), 500);
    assert!(
        r.totals()["handshakes"]["connections"].as_u64().unwrap() >= 490,
        "a connection per request"
    );
}

/// Checks a closed-loop run: every request answered 200, each one logged by nginx in `protocol`.
fn all_answered(r: &Run, nginx: &Nginx, protocol: &str) -> u64 {
    let requests = r.requests();
    assert!(requests > 0, "{}\n{}", r.totals(), r.output);
    assert_eq!(r.class("ok"), requests, "no invented errors: {}", r.totals());
    assert_eq!(nginx.count(protocol, 200), requests, "nginx answered each once");
    requests
}

#[test]
fn closed_loop_workers_follow_a_servers_keep_alive_policies() {
    // Two answers per connection, chunked (gzip drops nginx's Content-Length).
    let nginx = Nginx::start(
        "closed-requests-2",
        "",
        "keepalive_requests 2;",
        "gzip on; gzip_min_length 1; gzip_types text/plain;",
    );
    let url = format!("http://127.0.0.1:{}", nginx.port);
    let gzip = r#"headers = { accept-encoding = "gzip" }"#;
    let r = run_scenario("closed-requests-2", &url, gzip, "concurrency = 4", 2, &[]);
    let requests = all_answered(&r, &nginx, "HTTP/1.1");
    let connections = r.totals()["handshakes"]["connections"].as_u64().unwrap();
    assert!(
        connections >= requests / 2 && connections <= requests / 2 + 4,
        "a connection per two requests: {connections} for {requests}"
    );

    // A connection per answer.
    let close = Nginx::start("closed-close", "", "keepalive_timeout 0;", "");
    let url = format!("http://127.0.0.1:{}", close.port);
    let r = run_scenario("closed-close", &url, "", "concurrency = 2", 2, &[]);
    let requests = all_answered(&r, &close, "HTTP/1.1");
    assert_eq!(r.totals()["handshakes"]["connections"].as_u64(), Some(requests));
}

#[test]
fn closed_loop_over_https() {
    let certs = Certs::make("closed-tls");
    let nginx = Nginx::start("closed-tls", "ssl", &certs.server_directives(), "");
    let url = format!("https://localhost:{}", nginx.port);
    let cacert = certs.path("ca.pem");
    let r = run_scenario(
        "closed-h1",
        &url,
        "",
        "concurrency = 4",
        2,
        &["--cacert", &cacert],
    );
    let requests = all_answered(&r, &nginx, "HTTP/1.1");
    assert_eq!(r.protocol("HTTP/1.1"), requests);
    let connections = r.totals()["handshakes"]["connections"].as_u64().unwrap();
    // Each worker keeps its connection (nginx closes one after 1000 requests).
    assert!(
        (4..=4 + requests / 1000).contains(&connections),
        "{connections} connections for {requests} requests"
    );
}

#[test]
fn http2_streams_refused_by_goaway_are_sent_again_not_counted_failed() {
    // nginx ends an HTTP/2 connection with GOAWAY after `keepalive_requests` streams; the streams in
    // flight above its last stream id were never processed, and go out again on a new connection.
    let certs = Certs::make("goaway");
    let directives = format!("{} keepalive_requests 50;", certs.server_directives());
    let nginx = Nginx::start("goaway", "ssl http2", &directives, "");
    let url = format!("https://localhost:{}", nginx.port);
    let flags = ["--cacert", &certs.path("ca.pem"), "--http2"];
    let r = run_scenario("goaway", &url, "", "concurrency = 8", 2, &flags);
    let requests = all_answered(&r, &nginx, "HTTP/2.0");
    assert_eq!(r.protocol("HTTP/2"), requests);
    let connections = r.totals()["handshakes"]["connections"].as_u64().unwrap();
    assert!(
        requests > 100 && connections >= requests / 50,
        "the run crossed nginx's limit of 50 streams per connection: {requests} requests, {connections} connections"
    );
}

#[test]
fn http2_request_bodies_arrive_whole() {
    // Each body is larger than HTTP/2's initial flow-control window (64 KiB), so it goes out as nginx
    // opens the window. nginx passes it on to a second server, which logs the length it received.
    let backend = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nginx = Nginx::start(
        "h2-bodies",
        "http2",
        &format!("client_max_body_size 1m; location = / {{ proxy_pass http://127.0.0.1:{backend}; }}"),
        &format!(
            "log_format bodies '$request_method $content_length'; server {{ listen 127.0.0.1:{backend}; \
             access_log logs/backend.log bodies; location / {{ return 200; }} }}"
        ),
    );
    let url = format!("http://127.0.0.1:{}", nginx.port);
    let body = "x".repeat(200_000);
    let mix = format!("method = \"POST\"\nbody = \"{body}\"");
    let load = "rate = { shape = \"constant\", rps = 50 }";
    let r = run_scenario("h2-bodies", &url, &mix, load, 2, &["--http2-prior-knowledge"]);
    let requests = all_answered(&r, &nginx, "HTTP/2.0");
    assert_eq!(requests, 100, "{}", r.totals());
    let received = std::fs::read_to_string(nginx.dir.join("logs/backend.log")).unwrap();
    assert_eq!(
        received.lines().filter(|l| *l == "POST 200000").count() as u64,
        requests,
        "every body arrived whole: {}",
        received.lines().next().unwrap_or_default()
    );
}

#[test]
fn scenario_secrets_come_from_the_environment_and_stay_out_of_reports() {
    let nginx = Nginx::start(
        "secrets",
        "",
        "",
        "log_format withauth '$http_authorization $arg_key';",
    );
    let file = scenario_file(
        "peer-secrets",
        r#"name = "secrets"
[defaults]
headers = { authorization = "Bearer ${LOADGEN_TEST_TOKEN}" }
[[mix]]
path = "/"
query = { key = "${LOADGEN_TEST_KEY}" }
[[phases]]
name = "steady"
duration = "1s"
rate = { shape = "constant", rps = 10 }
"#,
    );
    let json = file.with_extension("json");
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("run")
        .arg(&file)
        .args([
            "--target",
            &format!("http://127.0.0.1:{}", nginx.port),
            "--quiet",
            "--json",
        ])
        .arg(&json)
        .env("LOADGEN_TEST_TOKEN", "s3cret-token")
        .env("LOADGEN_TEST_KEY", "s3cret key")
        .output()
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{output}");
    let report = std::fs::read_to_string(&json).unwrap();
    assert_eq!(read_report(&json)["phases"][0]["totals"]["classes"]["ok"], 10);
    for secret in ["s3cret-token", "s3cret", "s3cret%20key"] {
        assert!(!report.contains(secret), "the report holds no secret");
        assert!(!output.contains(secret), "the output holds no secret");
    }
    // The values really went out: nginx logged the query it received.
    let log = std::fs::read_to_string(nginx.dir.join("logs/access.log")).unwrap();
    assert_eq!(log.matches("/?key=s3cret%20key").count(), 10, "{log}");

    // An unset variable is an error at its line and column, before anything is sent.
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("validate")
        .arg(&file)
        .env_remove("LOADGEN_TEST_TOKEN")
        .env("LOADGEN_TEST_KEY", "x")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("peer-secrets.toml:3:"), "{err}");
    assert!(err.contains("LOADGEN_TEST_TOKEN"), "{err}");
}

#[test]
fn the_targets_protocol_flags_never_reach_prometheus() {
    // An https target spoken to in HTTP/2 by ALPN, and a plain-http Prometheus: each peer gets its
    // own protocol, so the alert check is made (it was refused as a usage error when one set of
    // client options served both).
    assert!(
        loadgen::alerts::prometheus::installed(),
        "`prometheus` is not on the PATH"
    );
    let certs = Certs::make("h2-prom");
    let tls = Nginx::start("h2-prom", "ssl http2", &certs.server_directives(), "");
    let url = format!("https://localhost:{}", tls.port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let unscraped: std::net::SocketAddr = ([127, 0, 0, 1], 1).into();
    let prometheus = rt
        .block_on(loadgen::alerts::prometheus::LocalPrometheus::start(
            &[("elsewhere", unscraped)],
            None,
            None,
        ))
        .expect("start Prometheus");
    let load =
        "rate = { shape = \"constant\", rps = 20 }\nexpect = { alerts_inactive = [\"HighErrorRate\"] }";
    let r = run_scenario(
        "h2-prom",
        &url,
        "",
        load,
        3,
        &[
            "--cacert",
            &certs.path("ca.pem"),
            "--http2",
            "--prometheus",
            &prometheus.url,
            "--alert-match",
            r#"job="nginx-peer""#,
        ],
    );
    assert_eq!(r.code, Some(0), "{}", r.output);
    assert_eq!(r.protocol("HTTP/2"), 60, "{}", r.totals());
    let check = &r.report["alerts"]["checks"][0];
    assert_eq!(check["verdict"], "pass", "{check}\n{}", r.output);
    assert_eq!(check["coverage"]["covered"], 1.0, "{check}");
    assert_eq!(r.report["alerts"]["failed_polls"], 0, "{}", r.output);
}
