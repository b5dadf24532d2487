//! The endpoints: each turns a request into an answer, creating child spans for its internal work.
//!
//! Handlers never record request metrics or access logs (see [`crate::app`]); they report business
//! outcomes and log what is specific to them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use opentelemetry::trace::Status;
use rand::RngExt;
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::exchange::{allow, json, json_error, read_body, Abort, Body, ConnInfo};
use crate::route::Route;
use crate::state::App;
use crate::telemetry::profiles::ProfileId;

type Answer = Result<Response<Body>, Abort>;

/// Calls the handler of `route`.
pub async fn dispatch(app: &Arc<App>, conn: &ConnInfo, route: Route, req: Request<Incoming>) -> Answer {
    let get = [Method::GET, Method::HEAD];
    let checked = match route {
        Route::Checkout => allow(req.method(), &[Method::POST, Method::GET]),
        Route::InventoryReserve | Route::PaymentsCharge => allow(req.method(), &[Method::POST]),
        Route::AdminChaos => allow(req.method(), &[Method::GET, Method::PUT, Method::DELETE]),
        Route::Unmatched => Ok(()),
        _ => allow(req.method(), &get),
    };
    if let Err(resp) = checked {
        return Ok(resp);
    }
    Ok(match route {
        Route::Index => index(app),
        Route::Health => json(
            StatusCode::OK,
            &json!({ "status": "ok", "service": app.telemetry.service.as_ref() }),
        ),
        Route::Metrics => metrics(app),
        Route::Slow => slow(&req).await,
        Route::Error => return error(&req).await,
        Route::External => external(app, route).await,
        Route::GenerateLoad => generate_load(app, &req).await,
        Route::Checkout => checkout(app, route, req).await,
        Route::Data => data().await,
        Route::InventoryReserve => downstream_step(req, "reserved").await,
        Route::PaymentsCharge => downstream_step(req, "charged").await,
        Route::AdminChaos => crate::admin::chaos(app, conn, req).await,
        Route::Unmatched => json_error(StatusCode::NOT_FOUND, "no such route; GET / lists them"),
    })
}

fn index(app: &App) -> Response<Body> {
    let role = app.config.role;
    let routes: Vec<_> = Route::ALL
        .iter()
        .filter(|r| r.served_by(role) && **r != Route::Unmatched)
        .map(|r| json!({ "path": r.template(), "description": r.description(), "faultable": r.faultable() }))
        .collect();
    json(
        StatusCode::OK,
        &json!({
            "service": app.telemetry.service.as_ref(),
            "role": role,
            "version": env!("CARGO_PKG_VERSION"),
            "routes": routes,
        }),
    )
}

fn metrics(app: &App) -> Response<Body> {
    Response::builder()
        .header(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(Body::new(Bytes::from(app.telemetry.metrics.render())))
        .expect("static response parts are valid")
}

/// The value of query parameter `name`, if present.
pub fn query_param<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

/// Parses `?name=` as a number within `range`, or answers 400 naming the parameter.
fn number_param(
    req: &Request<Incoming>,
    name: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, Response<Body>> {
    let Some(text) = query_param(req, name) else {
        return Ok(None);
    };
    match text.parse::<u64>() {
        Ok(v) if range.contains(&v) => Ok(Some(v)),
        _ => Err(json_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "query parameter `{name}` must be a whole number from {} to {}, got `{text}`",
                range.start(),
                range.end()
            ),
        )),
    }
}

async fn slow(req: &Request<Incoming>) -> Response<Body> {
    let ms = match number_param(req, "ms", 0..=30_000) {
        Ok(Some(ms)) => ms,
        Ok(None) => rand::rng().random_range(1000..=3000),
        Err(resp) => return resp,
    };
    child_span("slow.wait", tokio::time::sleep(Duration::from_millis(ms))).await;
    json(StatusCode::OK, &json!({ "slept_ms": ms }))
}

async fn error(req: &Request<Incoming>) -> Answer {
    let kind = query_param(req, "type").unwrap_or("500");
    let kind = if kind == "random" {
        ["500", "502", "503", "404", "timeout"][rand::rng().random_range(0..5)]
    } else {
        kind
    };
    Ok(match kind {
        "500" => json_error(StatusCode::INTERNAL_SERVER_ERROR, "simulated internal error"),
        "502" => json_error(StatusCode::BAD_GATEWAY, "simulated bad gateway"),
        "503" => json_error(StatusCode::SERVICE_UNAVAILABLE, "simulated unavailability"),
        "404" => json_error(StatusCode::NOT_FOUND, "simulated missing resource"),
        "timeout" => {
            let ms = match number_param(req, "ms", 0..=60_000) {
                Ok(ms) => ms.unwrap_or(5000),
                Err(resp) => return Ok(resp),
            };
            child_span("timeout.wait", tokio::time::sleep(Duration::from_millis(ms))).await;
            json_error(StatusCode::GATEWAY_TIMEOUT, "simulated timeout")
        }
        other => json_error(
            StatusCode::BAD_REQUEST,
            &format!("query parameter `type` must be 500, 502, 503, 404, timeout or random, got `{other}`"),
        ),
    })
}

async fn external(app: &Arc<App>, route: Route) -> Response<Body> {
    match app
        .downstream
        .call(&app.telemetry, &app.chaos, route, Method::GET, "/api/data", None)
        .await
    {
        Ok(reply) if reply.status.is_success() => {
            let data: serde_json::Value =
                serde_json::from_slice(&reply.body).unwrap_or(serde_json::Value::Null);
            json(StatusCode::OK, &json!({ "downstream": data }))
        }
        Ok(reply) => {
            tracing::error!(
                downstream_status = reply.status.as_u16(),
                "downstream answered with an error"
            );
            json_error(
                StatusCode::BAD_GATEWAY,
                &format!("downstream answered {}", reply.status),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "downstream call failed");
            json_error(StatusCode::BAD_GATEWAY, &format!("downstream call failed: {e}"))
        }
    }
}

async fn generate_load(app: &Arc<App>, req: &Request<Incoming>) -> Response<Body> {
    let ms = match number_param(req, "ms", 1..=2000) {
        Ok(ms) => ms.unwrap_or(50),
        Err(resp) => return resp,
    };
    // CPU work runs off the async workers so it cannot stall other requests. It owns its thread while
    // it runs, so its samples can carry the request's profile id.
    let span = tracing::Span::current();
    let dispatch = tracing::dispatcher::get_default(|d| d.clone());
    let profile_id = req.extensions().get::<ProfileId>().cloned();
    let app = app.clone();
    let report = tokio::task::spawn_blocking(move || {
        tracing::dispatcher::with_default(&dispatch, || {
            span.in_scope(|| {
                app.telemetry.profiled(profile_id.as_ref(), || {
                    crate::work::generate_load(Duration::from_millis(ms))
                })
            })
        })
    })
    .await;
    match report {
        Ok(report) => json(StatusCode::OK, &json!({ "budget_ms": ms, "report": report })),
        Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "load generation failed"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cart {
    items: Vec<CartItem>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CartItem {
    sku: String,
    qty: u32,
}

async fn checkout(app: &Arc<App>, route: Route, req: Request<Incoming>) -> Response<Body> {
    let cart = if req.method() == Method::GET {
        Cart {
            items: vec![CartItem {
                sku: "demo-1".into(),
                qty: 1,
            }],
        }
    } else {
        let body = match read_body(req).await {
            Ok(b) => b,
            Err(resp) => return resp,
        };
        match serde_json::from_slice::<Cart>(&body) {
            Ok(cart) => cart,
            Err(e) => {
                app.telemetry.metrics.business("checkout", "invalid");
                return json_error(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid cart: {e} (expected {{\"items\":[{{\"sku\":\"A1\",\"qty\":2}}]}})"),
                );
            }
        }
    };
    let total = match child_span("checkout.validate_cart", async { validate_cart(&cart) }).await {
        Ok(total) => total,
        Err(problem) => {
            app.telemetry.metrics.business("checkout", "invalid");
            return json_error(StatusCode::BAD_REQUEST, &problem);
        }
    };
    let order = json!({ "items": cart.items.len(), "total_cents": total });
    let body = Bytes::from(order.to_string());
    for (step, path) in [("reserve", "/inventory/reserve"), ("charge", "/payments/charge")] {
        let outcome = app
            .downstream
            .call(
                &app.telemetry,
                &app.chaos,
                route,
                Method::POST,
                path,
                Some(body.clone()),
            )
            .await;
        let failure = match outcome {
            Ok(reply) if reply.status.is_success() => continue,
            Ok(reply) => format!("{step} answered {}", reply.status),
            Err(e) => format!("{step} failed: {e}"),
        };
        app.telemetry.metrics.business("checkout", "failure");
        tracing::Span::current().set_status(Status::error(failure.clone()));
        tracing::error!(step, error = failure.as_str(), "checkout failed");
        return json_error(StatusCode::BAD_GATEWAY, &format!("checkout failed: {failure}"));
    }
    app.telemetry.metrics.business("checkout", "success");
    tracing::info!(
        total_cents = total,
        items = cart.items.len() as u64,
        "checkout completed"
    );
    json(
        StatusCode::OK,
        &json!({ "status": "confirmed", "total_cents": total }),
    )
}

/// Checks quantities and prices the cart in cents.
fn validate_cart(cart: &Cart) -> Result<u64, String> {
    if cart.items.is_empty() || cart.items.len() > 100 {
        return Err("cart must hold 1 to 100 items".into());
    }
    let mut total = 0u64;
    for (i, item) in cart.items.iter().enumerate() {
        if item.qty == 0 || item.qty > 1000 || item.sku.is_empty() || item.sku.len() > 64 {
            return Err(format!("items[{i}]: sku must be 1-64 characters and qty 1-1000"));
        }
        let price = 199 + item.sku.bytes().map(u64::from).sum::<u64>() % 5000;
        total += price * u64::from(item.qty);
    }
    Ok(total)
}

async fn data() -> Response<Body> {
    let ms = rand::rng().random_range(5..=25);
    child_span("data.lookup", tokio::time::sleep(Duration::from_millis(ms))).await;
    json(
        StatusCode::OK,
        &json!({ "id": rand::rng().random_range(1..=10_000u32), "source": "downstream", "lookup_ms": ms }),
    )
}

async fn downstream_step(req: Request<Incoming>, done: &str) -> Response<Body> {
    if let Err(resp) = read_body(req).await {
        return resp;
    }
    let ms = rand::rng().random_range(5..=40);
    child_span("ledger.write", tokio::time::sleep(Duration::from_millis(ms))).await;
    json(StatusCode::OK, &json!({ "status": done }))
}

/// Runs `fut` in a child span of the current one, named `name`.
pub async fn child_span<T>(name: &'static str, fut: impl std::future::Future<Output = T>) -> T {
    fut.instrument(tracing::info_span!(target: "target_app::work", "work", otel.name = name))
        .await
}
