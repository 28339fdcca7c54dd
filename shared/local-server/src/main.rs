//! `plan-local`: every route of the plan API in one process, and the reindex job.
//!
//! ```text
//! plan-local                        serve the API (embedded backends unless configured otherwise)
//! plan-local reindex sweep          publish every change still marked unpublished
//! plan-local reindex rebuild        rebuild the index from the store behind the alias
//! plan-local reindex drift          compare store and index plan by plan
//! ```
//!
//! Reads `.env` when present (see `.env.example`).

mod reindex;

use std::process::ExitCode;
use std::time::Duration;

use plan_events::{Offsets, run_poller};
use plan_http::{Backends, Config, Deployment};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// How often the server sweeps unpublished changes when it talks to a real broker (the Lambda
/// deployment does this on a schedule).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> ExitCode {
    let dotenv = dotenvy::dotenv();
    tracing_subscriber::fmt().with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))).init();
    if let Ok(path) = dotenv {
        tracing::info!(path = %path.display(), "read .env");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        [] | ["serve"] => serve().await,
        ["reindex", job] => reindex::run(job).await,
        ["--help" | "-h" | "help"] => {
            println!("{}", USAGE);
            Ok(())
        }
        _ => Err(format!("unknown arguments {args:?}\n{USAGE}").into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: plan-local [serve] | plan-local reindex <sweep|rebuild|drift>";

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env(Deployment::Local)?;
    let backends = Backends::from_config(&config, Deployment::Local)?;
    let mut background = Vec::new();
    if let Some(kafka) = &config.kafka {
        // Plays the MSK event source mapping: the topic into the same indexer the Lambda runs.
        background.push(tokio::spawn(run_poller(kafka.clone(), backends.indexer(), Offsets::default())));
        background.push(tokio::spawn(sweep_periodically(backends.clone())));
    }
    let listener = TcpListener::bind((config.host, config.port)).await?;
    let store = if config.redis.is_some() { "Redis" } else { "embedded store" };
    let events = if config.kafka.is_some() { "Kafka + local poller" } else { "in-process bus" };
    tracing::info!("plan API on http://{} ({store}, {events}, embedded index); try GET /v1/health", listener.local_addr()?);
    axum::serve(listener, plan_http::app(&backends)).with_graceful_shutdown(shutdown_signal()).await?;
    background.iter().for_each(tokio::task::JoinHandle::abort);
    tracing::info!("stopped");
    Ok(())
}

async fn sweep_periodically(backends: Backends) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        match plan::jobs::sweep(backends.walk().as_ref(), backends.store().as_ref(), backends.publisher().as_ref()).await {
            Ok(report) if report.republished > 0 => tracing::info!(?report, "sweep republished unpublished changes"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "sweep stopped; the rest stays marked for the next one"),
        }
    }
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
