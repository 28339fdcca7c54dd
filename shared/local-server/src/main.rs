//! `plan-local`: every route of the plan API in one process.
//!
//! With no configuration it runs on embedded in-memory backends, as its own token issuer: the
//! first start creates a development signing key in `LOCAL_KEY_DIR` (`.local/`), and
//! `plan-local token` mints tokens with it. `REDIS_URL` points it at Redis; `JWKS_URL` (with
//! `JWT_ISSUER` and `JWT_AUDIENCE`) makes it verify another issuer's tokens instead;
//! `KAFKA_BOOTSTRAP_SERVERS` sends change events through Kafka, `OPENSEARCH_URL` indexes into an
//! OpenSearch or Elasticsearch cluster.
//! `plan-local reindex sweep|rebuild|drift` runs the reindex job against shared backends.
//! Reads `.env` when present (see `.env.example`).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

mod reindex;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use plan_events::{Offsets, run_poller};
use plan_http::auth::config::AuthConfig;
use plan_http::auth::{Grant, LocalIssuer};
use plan_wiring::reindex::{self as jobs, ReindexJob, ReindexReport};
use plan_wiring::{Backends, Config, Deployment};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "plan-local", version, about = "The plan API in one local process, and its development token issuer")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every route on HOST:PORT (the default).
    Serve,
    /// Print a bearer token signed by the local development issuer.
    Token(TokenArgs),
    /// Run a job of the reindex function against Redis, Kafka and the index service.
    Reindex {
        #[arg(value_enum)]
        job: reindex::Job,
    },
}

/// mimalloc instead of glibc's allocator: a request allocates a few hundred times (headers,
/// routing, the Redis reply), and glibc's malloc and free cost a quarter of a cached GET.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How often the server sweeps unpublished changes when it talks to a real broker (the Lambda
/// deployment does this on a schedule).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

#[derive(clap::Args)]
struct TokenArgs {
    /// The caller's organisation, put in the ORG_CLAIM claim (`hd` when ORG_CLAIM is unset).
    #[arg(long)]
    org: Option<String>,
    /// Space-separated scopes.
    #[arg(long, default_value = "plans:read plans:write")]
    scope: String,
    /// Lifetime: seconds, or a number with s, m, h or d (at most 30d).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: Duration,
    /// The subject (`sub`).
    #[arg(long, default_value = "local-developer")]
    sub: String,
}

/// `90`, `90s`, `15m`, `1h`, `7d`.
fn parse_ttl(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    let (number, unit) = raw.find(|c: char| !c.is_ascii_digit()).map_or((raw, "s"), |at| raw.split_at(at));
    let number: u64 = number.parse().map_err(|_| format!("'{raw}' is not a duration like 90s, 15m, 1h or 7d"))?;
    let seconds = match unit {
        "s" => number,
        "m" => number.saturating_mul(60),
        "h" => number.saturating_mul(3600),
        "d" => number.saturating_mul(86_400),
        _ => return Err(format!("'{raw}': the unit is s, m, h or d")),
    };
    if seconds == 0 || seconds > 30 * 86_400 {
        return Err("the lifetime is from 1s to 30d".to_owned());
    }
    Ok(Duration::from_secs(seconds))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let dotenv = dotenvy::dotenv();
    match cli.command.unwrap_or(Command::Serve) {
        command @ (Command::Serve | Command::Reindex { .. }) => {
            // Logs go to stderr: `plan-local reindex` prints its JSON report alone on stdout.
            tracing_subscriber::fmt()
                .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
                .with_writer(std::io::stderr)
                .init();
            if let Ok(path) = dotenv {
                tracing::info!(path = %path.display(), "read .env");
            }
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(runtime) => runtime,
                Err(error) => return fail(&format!("cannot start the runtime: {error}")),
            };
            let work = async {
                match command {
                    Command::Reindex { job } => reindex::run(job).await,
                    _ => serve().await.map(|()| reindex::Outcome::Clean),
                }
            };
            match runtime.block_on(work) {
                Ok(reindex::Outcome::Clean) => ExitCode::SUCCESS,
                Ok(reindex::Outcome::Problems(summary)) => {
                    tracing::warn!("{summary}");
                    ExitCode::from(reindex::EXIT_PROBLEMS)
                }
                Err(error) => {
                    tracing::error!("{error}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Token(args) => match token(&args) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(error) => fail(&error),
        },
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env(Deployment::Local)?;
    // Before the backends, so that everything they record is kept.
    let metrics = plan_local::exporter::install()?;
    let backends = Backends::from_config(&config)?;
    let mut background = Vec::new();
    // A second server on the machine (a test run, another checkout) holds the default port: the
    // API still starts, without its scrape endpoint, and says so.
    match config.metrics_addr.map(TcpListener::bind) {
        Some(bind) => match bind.await {
            Ok(listener) => {
                tracing::info!("Prometheus metrics on http://{}/metrics (METRICS_ADDR)", listener.local_addr()?);
                background.push(tokio::spawn(plan_local::exporter::serve(listener, metrics.clone(), std::future::pending())));
            }
            Err(error) => tracing::warn!(%error, "no Prometheus endpoint: METRICS_ADDR cannot be bound (set another address, or off)"),
        },
        None => tracing::info!("no Prometheus endpoint (METRICS_ADDR=off)"),
    }
    if let Some(kafka) = &config.events.kafka {
        // Plays the MSK event source mapping: the topic into the same indexer the Lambda runs.
        let indexer = backends.indexer();
        // The dead-letter topic is created at start, so it exists before the first poison record.
        background.push(tokio::spawn(async move { indexer.prepare().await }));
        background.push(tokio::spawn(run_poller(kafka.clone(), backends.indexer(), Offsets::default())));
        background.push(tokio::spawn(sweep_periodically(backends.clone())));
    }
    let listener = TcpListener::bind((config.host, config.port)).await?;
    let address = listener.local_addr()?;
    let store = if config.redis.is_some() { "Redis" } else { "embedded in-memory store" };
    let events = if config.events.kafka.is_some() { "Kafka with the local poller" } else { "in-process event bus" };
    let index = if config.opensearch.is_some() { "OpenSearch" } else { "embedded search index" };
    tracing::info!("plan API on http://{address} ({store}, {events}, {index}); try GET /v1/health");
    let auth = backends.auth();
    match auth.org_claim() {
        Some(claim) => tracing::info!("authentication: {}; tenant isolation on the '{claim}' claim", auth.describe()),
        None => tracing::info!("authentication: {}; tenant isolation off (set ORG_CLAIM to turn it on)", auth.describe()),
    }
    if auth.published_jwks().is_some() {
        tracing::info!("its JWKS: http://{address}{}; mint a token with `plan-local token --help`", plan_http::JWKS_PATH);
    }
    plan_local::server::serve(listener, plan_wiring::app(&backends), config.header_timeout, shutdown_signal()).await;
    background.iter().for_each(tokio::task::JoinHandle::abort);
    tracing::info!("{}", plan_local::exporter::Summary::from_text(&metrics.render()));
    tracing::info!("stopped");
    Ok(())
}

async fn sweep_periodically(backends: Backends) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tick.tick().await;
        match jobs::run(&backends.reindex_parts(), ReindexJob::Sweep, &|_| {}).await {
            Ok(report @ ReindexReport::Sweep { republished: 1.., .. }) => {
                tracing::info!(report = %report.to_json(), "sweep republished unpublished changes");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "sweep stopped; the rest stays marked for the next one"),
        }
    }
}

/// Mints with the same key, issuer and audience the server verifies with (creating the key if the
/// server never ran), so the token works as soon as the server is up.
fn token(args: &TokenArgs) -> Result<String, String> {
    let config = Config::from_env(Deployment::Local).map_err(|e| e.to_string())?;
    let AuthConfig::LocalIssuer(local) = &config.auth else {
        return Err("JWKS_URL is set, so the server trusts that issuer: get tokens from it (plan-local mints only its own)".to_owned());
    };
    let (issuer, _) =
        LocalIssuer::load_or_create(&local.key_dir, &local.issuer, &local.audience, local.algorithm).map_err(|e| e.to_string())?;
    let org = args.org.as_ref().map(|org| {
        if config.claims.org_claim.is_none() {
            eprintln!("note: ORG_CLAIM is unset, so the server does not isolate organisations; the org goes in the 'hd' claim");
        }
        (config.claims.org_claim.clone().unwrap_or_else(|| "hd".to_owned()), org.clone())
    });
    let grant = Grant { subject: args.sub.clone(), scopes: args.scope.split_whitespace().map(str::to_owned).collect(), org, ttl: args.ttl };
    issuer.mint(&grant).map_err(|e| e.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("30d"), Ok(Duration::from_secs(30 * 86_400)));
        for bad in ["", "0", "1y", "h", "31d", "-5m"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["plan-local", "token", "--org", "example.com", "--scope", "plans:read", "--ttl", "10m"]).unwrap();
        let Some(Command::Token(args)) = cli.command else { panic!("token") };
        assert_eq!((args.org.as_deref(), args.scope.as_str(), args.ttl), (Some("example.com"), "plans:read", Duration::from_secs(600)));
        assert!(Cli::try_parse_from(["plan-local"]).unwrap().command.is_none(), "serving is the default");
    }
}
