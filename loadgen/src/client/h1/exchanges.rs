// The scripted exchanges of `tests.rs`, included there in a module per kind of connection; the
// module's `send` chooses the kind.

#[tokio::test]
async fn answers_with_a_length_share_one_connection() {
    let server = Scripted::start(|_, _| keep(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")).await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    for _ in 0..3 {
        let r = send(&client, &mut own, &get("/")).await;
        assert_eq!((r.class, r.status, r.bytes), (Class::Ok, Some(200), 5));
        assert_eq!(r.version, Some(Version::Http1));
    }
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn chunked_answers_are_counted_through_extensions_and_trailers() {
    let server = Scripted::start(|_, _| {
        keep(b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4;ext=1\r\nabcd\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n")
    })
    .await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    for _ in 0..2 {
        let r = send(&client, &mut own, &get("/")).await;
        assert_eq!((r.class, r.status, r.bytes), (Class::Http5xx, Some(503), 14));
    }
    assert_eq!(
        server.connections(),
        1,
        "the connection is reused after the trailers"
    );
}

#[tokio::test]
async fn an_answer_ended_by_close_is_read_to_the_end_and_not_reused() {
    let server = Scripted::start(|_, _| Reply {
        bytes: b"HTTP/1.1 200 OK\r\n\r\nuntil the end",
        then: Then::Close,
    })
    .await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    for _ in 0..2 {
        let r = send(&client, &mut own, &get("/")).await;
        assert_eq!((r.class, r.bytes, r.resent), (Class::Ok, 13, false));
    }
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn connection_close_is_honoured_without_an_error() {
    // The server says it closes after every second answer, as nginx does at keepalive_requests.
    let server = Scripted::start(|_, n| {
        if n == 1 {
            Reply {
                bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                then: Then::Close,
            }
        } else {
            keep(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        }
    })
    .await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    for _ in 0..6 {
        let r = send(&client, &mut own, &get("/")).await;
        assert_eq!((r.class, r.resent), (Class::Ok, false));
    }
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn an_idle_connection_the_server_closed_is_replaced_without_a_resend() {
    let server = Scripted::start(|_, _| Reply {
        bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        then: Then::Close,
    })
    .await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    for _ in 0..3 {
        let r = send(&client, &mut own, &get("/")).await;
        assert_eq!((r.class, r.resent), (Class::Ok, false));
        // Long enough for the close to arrive and for the connection to be checked before reuse.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn informational_answers_are_skipped_and_bodiless_ones_read_no_body() {
    let server = Scripted::start(|_, n| match n {
        0 => keep(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
        1 => keep(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
        2 => keep(b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"),
        _ => keep(b"HTTP/1.1 304 Not Modified\r\n\r\n"),
    })
    .await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    let r = send(&client, &mut own, &get("/")).await;
    assert_eq!((r.status, r.bytes), (Some(200), 3));
    let r = send(&client, &mut own, &request(Method::HEAD, "/", None)).await;
    assert_eq!((r.class, r.status, r.bytes), (Class::Ok, Some(200), 0));
    let r = send(&client, &mut own, &get("/")).await;
    assert_eq!((r.status, r.bytes), (Some(204), 0));
    let r = send(&client, &mut own, &get("/")).await;
    assert_eq!((r.status, r.bytes), (Some(304), 0));
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn bodies_past_the_cap_are_cut_off_and_the_connection_dropped() {
    let server = Scripted::start(|conn, _| {
        if conn % 2 == 0 {
            keep(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789")
        } else {
            keep(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n")
        }
    })
    .await;
    let client = client(&server.url, 10);
    let mut own = Own::default();
    for _ in 0..2 {
        let r = send(&client, &mut own, &get("/")).await;
        assert_eq!((r.class, r.status, r.bytes), (Class::BodyTooLarge, Some(200), 10));
    }
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn answers_that_are_not_http_are_protocol_errors() {
    let server = Scripted::start(|_, n| match n {
        0 => keep(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"),
        1 => keep(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"),
        2 => keep(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        _ => keep(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
    })
    .await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    for _ in 0..4 {
        let r = send(&client, &mut own, &get("/")).await;
        assert_eq!((r.class, r.status), (Class::Protocol, None));
    }
    assert_eq!(
        server.connections(),
        4,
        "a connection that spoke nonsense is not reused"
    );
}

#[tokio::test]
async fn chunk_sizes_that_add_up_past_64_bits_are_protocol_errors() {
    let server = Scripted::start(|conn, _| match conn {
        0 => keep(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\nfffffffffffffffd\r\n"),
        1 => keep(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nffffffffffffffff\r\n"),
        // One chunk of 2^64 - 1 bytes is a size, just far past the cap.
        _ => keep(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"),
    })
    .await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    for _ in 0..2 {
        let r = send(&client, &mut own, &get("/")).await;
        assert_eq!((r.class, r.status), (Class::Protocol, None));
    }
    let r = send(&client, &mut own, &get("/")).await;
    assert_eq!(
        (r.class, r.status, r.bytes),
        (Class::BodyTooLarge, Some(200), 1024)
    );
    assert_eq!(server.connections(), 3, "no connection is reused after either");
}

#[tokio::test]
async fn a_close_or_reset_before_the_answer_ends_is_counted_not_resent() {
    let server = Scripted::start(|conn, _| match conn {
        0 => Reply {
            bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            then: Then::Close,
        },
        _ => Reply {
            bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            then: Then::ResetNext,
        },
    })
    .await;
    let client = client(&server.url, 1024);
    let mut own = Own::default();
    let r = send(&client, &mut own, &get("/")).await;
    assert_eq!((r.class, r.status, r.resent), (Class::Closed, None, false));
    let r = send(&client, &mut own, &get("/")).await;
    assert_eq!(r.class, Class::Ok);
    let r = send(&client, &mut own, &get("/")).await;
    assert!(matches!(r.class, Class::Reset | Class::Closed), "{:?}", r.class);
    assert!(!r.resent);
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn requests_are_written_as_the_scenario_says() {
    let server = Scripted::start(|_, _| keep(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")).await;
    let client = client(&format!("{}/base/", server.url), 1024);
    let mut own = Own::default();
    let mut post = request(Method::POST, "/orders?id=7", Some(b"{\"n\":1}"));
    post.headers
        .insert("content-type", HeaderValue::from_static("application/json"));
    post.headers.insert("x-run", HeaderValue::from_static("workshop"));
    let r = send(&client, &mut own, &post).await;
    assert_eq!((r.class, r.status, r.bytes), (Class::Ok, Some(201), 0));
    let r = send(&client, &mut own, &request(Method::PUT, "/empty", None)).await;
    assert_eq!(r.status, Some(201));
    let seen = server.requests.lock().unwrap().clone();
    let host = server.url.trim_start_matches("http://");
    assert_eq!(
        String::from_utf8(seen[0].clone()).unwrap(),
        format!(
            "POST /base/orders?id=7 HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n\
             x-run: workshop\r\ncontent-length: 7\r\n\r\n{{\"n\":1}}"
        )
    );
    assert_eq!(
        String::from_utf8(seen[1].clone()).unwrap(),
        format!("PUT /base/empty HTTP/1.1\r\nhost: {host}\r\ncontent-length: 0\r\n\r\n")
    );
}

#[tokio::test]
async fn a_refused_connection_is_classified_connect() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = client(&url, 1024);
    let mut own = Own::default();
    let r = send(&client, &mut own, &get("/")).await;
    assert_eq!((r.class, r.status, r.handshake), (Class::Connect, None, None));
}

/// A server that reads only each request's head, answers 413 and closes without reading the body
/// (so the kernel resets the connection), after holding it for `linger`. Counts the heads it read.
async fn refusing_server(linger: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let heads = Arc::new(AtomicUsize::new(0));
    let count = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    let mut chunk = [0u8; 4096];
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
                tokio::time::sleep(linger).await;
            });
        }
    });
    (url, heads)
}

const BIG: &[u8] = &[b'x'; 16 << 20];

#[tokio::test]
async fn a_request_the_server_refused_part_way_is_never_sent_twice() {
    // The server resets at once: whatever loadgen saw, each request arrived once.
    let (url, heads) = refusing_server(Duration::ZERO).await;
    let client = client(&url, 1024);
    let mut own = Own::default();
    let post = request(Method::POST, "/upload", Some(BIG));
    for _ in 0..5 {
        let r = send(&client, &mut own, &post).await;
        assert!(!r.resent, "{r:?}");
        assert!(
            matches!(r.class, Class::Http4xx | Class::Reset | Class::Closed),
            "{r:?}"
        );
    }
    assert_eq!(
        heads.load(Ordering::SeqCst),
        5,
        "each request reached the server once"
    );
}

#[tokio::test]
async fn an_answer_that_comes_while_the_body_is_written_is_what_the_request_got() {
    let (url, heads) = refusing_server(Duration::from_secs(5)).await;
    let client = client(&url, 1024);
    let mut own = Own::default();
    let post = request(Method::POST, "/upload", Some(BIG));
    for _ in 0..3 {
        let r = send(&client, &mut own, &post).await;
        assert_eq!(
            (r.class, r.status, r.resent),
            (Class::Http4xx, Some(413), false),
            "{r:?}"
        );
    }
    assert_eq!(heads.load(Ordering::SeqCst), 3);
}
