//! `plan-local`: every route of the plan API in one process.
//!
//! With no configuration it runs on embedded in-memory backends; `REDIS_URL` points it at Redis,
//! `OPENSEARCH_URL` at an OpenSearch or Elasticsearch cluster.
//! Reads `.env` when present (see `.env.example`).

use std::process::ExitCode;

use plan_http::{Backends, Config, Deployment};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let dotenv = dotenvy::dotenv();
    tracing_subscriber::fmt().with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))).init();
    if let Ok(path) = dotenv {
        tracing::info!(path = %path.display(), "read .env");
    }
    match serve().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env(Deployment::Local)?;
    let backends = Backends::from_config(&config)?;
    let listener = TcpListener::bind((config.host, config.port)).await?;
    let store = if config.redis.is_some() { "Redis" } else { "embedded in-memory store" };
    let index = if config.opensearch.is_some() { "OpenSearch" } else { "embedded search index" };
    tracing::info!("plan API on http://{} ({store}, {index}); try GET /v1/health", listener.local_addr()?);
    axum::serve(listener, plan_http::app(&backends)).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
