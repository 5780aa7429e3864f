//! Serves the API: over TLS with the site's own certificate (the one its
//! peer pins) unless `[listen] api_tls = false` on a loopback address, with
//! a handshake and a header read timeout and a cap on open connections, so
//! clients that hold a connection without finishing a request cannot starve
//! the others.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::identity::Identity;

/// Bounds on what one client may hold.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// From accept to the end of the TLS handshake.
    pub handshake: Duration,
    /// From the first byte of a request (or the connection) to its last header.
    pub header: Duration,
    /// Connections open at once; more wait in the kernel's backlog.
    pub connections: usize,
    /// How long a stop waits for open requests before closing them.
    pub drain: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            handshake: Duration::from_secs(10),
            header: Duration::from_secs(10),
            connections: 1024,
            drain: Duration::from_secs(5),
        }
    }
}

/// The API's TLS settings: TLS 1.3, the site's certificate, no client
/// certificate (callers prove themselves with a token).
pub fn api_tls(identity: &Identity) -> Result<tokio_rustls::TlsAcceptor, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![identity.cert.clone()], identity.key.clone_key())?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// requests finish for at most [`HttpLimits::drain`].
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // A slot first: at the cap, new clients wait in the backlog rather
        // than take memory here.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.map_err(io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (tcp, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait, do not spin.
                    warn!(error = %e, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let tls = tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _slot = slot;
            match tls {
                Some(tls) => match tokio::time::timeout(limits.handshake, tls.accept(tcp)).await {
                    Ok(Ok(stream)) => connection(stream, app, limits, watcher).await,
                    Ok(Err(e)) => debug!(%addr, error = %e, "API TLS handshake refused"),
                    Err(_) => debug!(%addr, "API TLS handshake timed out"),
                },
                None => connection(tcp, app, limits, watcher).await,
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        debug!("API requests still open at stop: closed");
    }
    Ok(())
}

/// Serves HTTP/1.1 on one accepted (and decrypted) connection.
async fn connection<S>(
    stream: S,
    app: axum::Router,
    limits: HttpLimits,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(conn).await {
        debug!(error = %e, "API connection ended");
    }
}
