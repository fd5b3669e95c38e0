//! The operator's HTTP endpoints: `/metrics` (Prometheus text), `/healthz` (the process
//! runs) and `/readyz` (its watches are established and working, see [`crate::health`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::health::Health;
use crate::metrics::Metrics;

/// Shared by the handlers.
#[derive(Clone)]
pub struct HttpState {
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// What `/readyz` answers.
    pub health: Arc<Health>,
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.encode())
}

async fn healthz() -> &'static str {
    "ok"
}

/// 200 or 503, with one line per watch saying why.
async fn readyz(State(s): State<HttpState>) -> (StatusCode, String) {
    let r = s.health.readiness();
    let code = if r.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, r.report)
}

/// Serves `/metrics` on `metrics_addr` and `/healthz` + `/readyz` on `health_addr` (one
/// listener when they are the same address). Returns when a listener fails.
pub async fn serve(metrics_addr: SocketAddr, health_addr: SocketAddr, state: HttpState) -> std::io::Result<()> {
    let health = Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz));
    let metrics_router = Router::new().route("/metrics", get(metrics));
    if metrics_addr == health_addr {
        let listener = tokio::net::TcpListener::bind(metrics_addr).await?;
        return axum::serve(listener, health.merge(metrics_router).with_state(state)).await;
    }
    let (m, h) =
        tokio::try_join!(tokio::net::TcpListener::bind(metrics_addr), tokio::net::TcpListener::bind(health_addr))?;
    tokio::try_join!(async { axum::serve(m, metrics_router.with_state(state.clone())).await }, async {
        axum::serve(h, health.with_state(state.clone())).await
    },)?;
    Ok(())
}
