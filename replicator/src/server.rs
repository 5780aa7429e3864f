//! One site process: a [`Site`] with its API, replication listener, peer
//! watch and heartbeats, from a config file to a clean stop on a signal.
//! The top of the crate: it alone puts the API (which stands on the site)
//! in front of the site.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tracing::info;

use crate::api;
use crate::config::LoadedConfig;
use crate::site::{Listeners, Site, SiteError, serve_with};

/// Runs a site until `shutdown` completes, then stops it cleanly. Prints the
/// bound addresses on stdout, one per line, for scripts and tests.
pub async fn run(
    config: LoadedConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SiteError> {
    let scheme = if config.site.listen.api_tls {
        "https"
    } else {
        "http"
    };
    let (site, listeners) = Site::start(config).await?;
    let api_addr: SocketAddr = listeners.api.local_addr()?;
    let repl_addr: SocketAddr = listeners.replication.local_addr()?;
    println!("api listening on {scheme}://{api_addr}");
    println!("replication listening on {repl_addr}");
    info!(site = %site.name, %api_addr, %repl_addr, "site started");
    serve(site, listeners, shutdown).await
}

/// Serves a started site (API, replication, peer watch, heartbeats) until
/// `shutdown` completes, then stops it cleanly.
pub async fn serve(
    site: Arc<Site>,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), SiteError> {
    let app = api::router(site.clone());
    serve_with(site, listeners, app, shutdown).await
}

/// Runs the site described by `file` until SIGINT or SIGTERM, on a runtime
/// of its own: the body of `ferry-replicator --config` and `ferry site`.
pub fn serve_config_file(file: &std::path::Path) -> Result<(), ServeError> {
    let config = LoadedConfig::load(file)?;
    let runtime = tokio::runtime::Runtime::new().map_err(ServeError::Runtime)?;
    runtime.block_on(async move {
        run(config, shutdown_signal())
            .await
            .map_err(|source| ServeError::Site {
                file: file.to_path_buf(),
                source,
            })
    })
}

/// Why a site could not be served from its config file.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{}: {source}", file.display())]
    Site {
        file: std::path::PathBuf,
        source: SiteError,
    },
}

/// Sends logs to stderr, filtered by `FERRY_LOG` (default `info`).
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .try_init();
}

/// Completes on SIGTERM or SIGINT: how a site or the demo is asked to stop.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
