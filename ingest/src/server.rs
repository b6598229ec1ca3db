//! The gateway's shared state, its router, and `serve`.

use crate::auth::KeyCache;
use crate::config::GatewayConfig;
use crate::metrics::GatewayMetrics;
use crate::producer::CommandProducer;
use crate::routes;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use billstream_processors::HotStore;
use billstream_processors::outcome::OutcomeHub;
use billstream_schemas::SchemaCatalog;
use prometheus::Registry;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

/// Everything a request handler needs.
pub struct Gateway {
    /// The hot store (reads, tenant lookup).
    pub store: Arc<dyn HotStore>,
    /// Schema ids and codecs.
    pub catalog: Arc<SchemaCatalog>,
    /// Publishes commands.
    pub producer: CommandProducer,
    /// In-process announcements of resolved commands; without it `?wait=applied` polls the
    /// store.
    pub hub: Option<Arc<OutcomeHub>>,
    /// Limits.
    pub config: GatewayConfig,
    /// The gateway's metrics.
    pub metrics: GatewayMetrics,
    /// The registry served at `/metrics` (every component of the process registers here).
    pub registry: Registry,
    /// API key → tenant.
    pub keys: KeyCache,
    /// Refuse writes while the processors are this far behind (see [`Backlog`]).
    pub backlog: Option<Backlog>,
}

/// Backpressure for a broker that cannot hold a long backlog (the embedded one keeps 5 MiB
/// per partition and drops older messages): the gateway answers 503 `backlog_full` rather
/// than accept a command the broker may drop before the processors read it.
pub struct Backlog {
    /// Value bytes the gateway has had acknowledged.
    pub produced: std::sync::atomic::AtomicU64,
    /// Value bytes the processors have read so far.
    pub consumed: Box<dyn Fn() -> u64 + Send + Sync>,
    /// Most bytes allowed in between.
    pub max_bytes: u64,
}

impl Backlog {
    /// Bytes produced and not yet read.
    pub fn behind(&self) -> u64 {
        self.produced.load(std::sync::atomic::Ordering::Relaxed).saturating_sub((self.consumed)())
    }

    /// Whether a write of `bytes` may go to the broker now. A request larger than the limit
    /// on its own still goes through when nothing is behind.
    pub fn admit(&self, bytes: u64) -> Result<(), crate::error::ApiError> {
        let behind = self.behind();
        if behind > 0 && behind + bytes > self.max_bytes {
            return Err(crate::error::ApiError::new(
                503,
                "backlog_full",
                format!("the processors are {behind} bytes behind (limit {}); retry in a moment", self.max_bytes),
            ));
        }
        Ok(())
    }
}

/// The full router: `/v1`, health, metrics, OpenAPI.
pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/invoices", post(routes::create_invoice).get(routes::list_invoices))
        .route("/v1/invoices/{id}", get(routes::get_invoice))
        .route("/v1/invoices/{id}/issue", post(routes::issue_invoice))
        .route("/v1/invoices/{id}/payments", post(routes::record_payment))
        .route("/v1/invoices/{id}/void", post(routes::void_invoice))
        .route("/v1/commands:batch", post(routes::batch))
        .route("/v1/commands/{id}", get(routes::get_command))
        .route("/v1/summary", get(routes::summary))
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(routes::metrics))
        .route("/openapi.json", get(routes::openapi))
        .fallback(routes::not_found)
        .layer(middleware::from_fn_with_state(gw.clone(), track))
        .with_state(gw)
}

async fn track(State(gw): State<Arc<Gateway>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let started = Instant::now();
    let response = next.run(req).await;
    gw.metrics.latency.with_label_values(&[&route]).observe(started.elapsed().as_secs_f64());
    gw.metrics.requests.with_label_values(&[&route, response.status().as_str()]).inc();
    response
}

/// Serves the gateway on `listener` until `shutdown` completes; in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gw: Arc<Gateway>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(gw)).with_graceful_shutdown(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::Backlog;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn holds_writes_back_while_the_processors_are_behind() {
        let consumed = Arc::new(AtomicU64::new(0));
        let seen = consumed.clone();
        let b = Backlog { produced: AtomicU64::new(0), consumed: Box::new(move || seen.load(Ordering::Relaxed)), max_bytes: 1000 };
        assert!(b.admit(5000).is_ok(), "nothing behind: even a large request goes");
        b.produced.fetch_add(900, Ordering::Relaxed);
        assert!(b.admit(100).is_ok());
        let e = b.admit(101).expect_err("over the limit");
        assert_eq!((e.status, e.code.as_str()), (503, "backlog_full"));
        consumed.store(900, Ordering::Relaxed);
        assert!(b.admit(1000).is_ok(), "caught up");
    }
}
