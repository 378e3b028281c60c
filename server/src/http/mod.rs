//! The HTTP/JSON API (`docs/http.md`): the same keys, rights, logs,
//! validation, schemas and dedup as the binary protocol, reached over
//! HTTP/1.1 on the same event loop.
//!
//! hyper parses the requests; this module owns what chainlog decides:
//!
//! - `routes`: the route table (method, path, the right each needs) and
//!   dispatch, the one place an HTTP request's right is decided, with the
//!   binary protocol's [`Need`](crate::route::Need)s;
//! - `body`: reading a bounded, possibly gzipped body with a stall timeout,
//!   and the response body type (whole, or streamed for SSE);
//! - `reply`: JSON replies and the one error shape;
//! - `parse`: append bodies straight into events (one pass, no tree);
//! - `json`: stored events and times as JSON;
//! - `events`, `admin`: the handlers;
//! - `openapi`: the OpenAPI document, built from the route table.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::config::Listener;
use crate::ctx::{self, Ctx, OpenConnection};

mod admin;
mod body;
mod events;
pub(crate) mod json;
pub(crate) mod openapi;
mod parse;
mod reply;
pub(crate) mod routes;

/// The most bytes of headers a request may send (hyper's read buffer).
const MAX_HEADER_BYTES: usize = 16 << 10;

/// Connection ids for the engine's inline-commit rule (one appender for a
/// while commits on its own thread): distinct from the binary protocol's.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1 << 62);

/// Accepts HTTP connections until the server stops; each is a task holding
/// a clone of `done` until it ends.
pub(crate) async fn accept_loop(listener: TcpListener, ctx: Arc<Ctx>, done: mpsc::Sender<()>) {
    let mut stop = ctx.stop_signal();
    while let Some((stream, peer)) = ctx::accept(&listener, &mut stop).await {
        let Some(open) = OpenConnection::take(&ctx) else {
            tracing::warn!(%peer, "refusing an http connection: at max_connections");
            continue;
        };
        let guard = (done.clone(), open);
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let limit = ctx.config.frame_timeout();
            if let Some(io) = crate::tls::accept(&ctx, Listener::Http, stream, peer, limit).await {
                serve(io, peer, ctx).await;
            }
            drop(guard);
        });
    }
}

/// Serves the Prometheus page (`GET /metrics`) on its own listener until
/// the server stops, on the same HTTP stack as the API (over TLS if the
/// metrics listener speaks it); `page` renders it. Every other path is a
/// 404 in the API's error shape.
pub(crate) async fn serve_metrics(
    listener: TcpListener,
    ctx: std::sync::Weak<Ctx>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    page: impl Fn() -> String + Send + Sync + 'static,
) {
    let page: Page = Arc::new(page);
    while let Some((stream, peer)) = ctx::accept(&listener, &mut stop).await {
        let (page, ctx) = (page.clone(), ctx.clone());
        tokio::spawn(async move {
            // Gone: the server has stopped, and the connection is dropped
            // (never served in clear on a listener that speaks TLS).
            let Some(c) = ctx.upgrade() else { return };
            let limit = METRICS_HEADER_TIMEOUT;
            let Some(io) = crate::tls::accept(&c, Listener::Metrics, stream, peer, limit).await
            else {
                return;
            };
            drop(c);
            metrics_connection(io, page).await;
        });
    }
}

/// Renders the metrics page.
type Page = Arc<dyn Fn() -> String + Send + Sync>;

/// How long a metrics request's headers may take.
const METRICS_HEADER_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves one scrape connection, for at most ten seconds.
async fn metrics_connection<S>(io: S, page: Page)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let page = page.clone();
        async move {
            let r = if req.method() == hyper::Method::GET && req.uri().path() == "/metrics" {
                let mut r = hyper::Response::new(body::Body::from(bytes::Bytes::from(page())));
                r.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                r
            } else {
                reply::HttpError::not_found("try GET /metrics").into_response()
            };
            Ok::<_, std::convert::Infallible>(r)
        }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(METRICS_HEADER_TIMEOUT)
        .max_buf_size(8192)
        .serve_connection(TokioIo::new(io), service);
    let _ = tokio::time::timeout(Duration::from_secs(10), conn).await;
}

/// Serves one connection's requests (keep-alive) until it closes, idles
/// out, or the server stops; a stop lets the request in progress finish.
async fn serve<S>(stream: S, peer: SocketAddr, ctx: Arc<Ctx>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let connection = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
    let service = {
        let ctx = ctx.clone();
        service_fn(move |req| {
            let ctx = ctx.clone();
            async move {
                Ok::<_, std::convert::Infallible>(routes::handle(&ctx, peer, connection, req).await)
            }
        })
    };
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        // A request's headers must arrive within the frame timeout. hyper
        // runs one timer from the end of a response to the end of the next
        // request's headers, so an idle keep-alive connection is closed
        // after it too (`docs/http.md`).
        .header_read_timeout(ctx.config.frame_timeout())
        .max_buf_size(MAX_HEADER_BYTES.max(8192))
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let mut stop = ctx.stop_signal();
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "http connection ended");
            }
        }
        () = ctx::stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}
