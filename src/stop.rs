//! The signals that end the TUI the way `q` does: SIGTERM (a service
//! manager, `kill`) and SIGHUP (the SSH session or terminal went away). The
//! loop treats them as a quit, so the terminal is restored before the
//! process exits instead of being left in the alternate screen.

#[cfg(unix)]
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Listens for the stopping signals from creation on.
pub struct Stop {
    #[cfg(unix)]
    term: Option<Signal>,
    #[cfg(unix)]
    hup: Option<Signal>,
}

impl Stop {
    /// Starts listening; a signal that cannot be listened for is left at
    /// its default (the process ends, as before).
    pub fn listen() -> Self {
        Self {
            #[cfg(unix)]
            term: signal(SignalKind::terminate()).ok(),
            #[cfg(unix)]
            hup: signal(SignalKind::hangup()).ok(),
        }
    }

    /// Resolves when one of the signals arrives; never without one.
    pub async fn requested(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            Some(()) = recv(&mut self.term) => {}
            Some(()) = recv(&mut self.hup) => {}
            else => std::future::pending::<()>().await,
        }
        #[cfg(not(unix))]
        std::future::pending::<()>().await
    }
}

#[cfg(unix)]
async fn recv(signal: &mut Option<Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}
