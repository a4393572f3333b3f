//! Serving an HTTP API, shared by the agent and the controller: bind, serve plain HTTP or
//! HTTPS in the background, stop gracefully within a grace period, or on SIGTERM/SIGINT.

use axum::Router;
use rustls::ServerConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}: {reason}")]
pub struct ListenError {
    pub addr: SocketAddr,
    pub reason: String,
}

/// Binds `addr` (port 0: any free port).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ListenError> {
    TcpListener::bind(addr).await.map_err(|e| ListenError {
        addr,
        reason: e.to_string(),
    })
}

/// A server running in the background.
pub struct Serving {
    addr: SocketAddr,
    scheme: &'static str,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    grace: Duration,
}

impl Serving {
    /// Serves `app` on `listener` (over TLS when `tls` is given) until `shutdown` turns true.
    /// The handlers see the peer's address (`ConnectInfo<SocketAddr>`).
    pub fn start(
        listener: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        app: Router,
        shutdown: watch::Sender<bool>,
        grace: Duration,
    ) -> Result<Serving, ListenError> {
        let addr = listener.local_addr().map_err(|e| ListenError {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            reason: e.to_string(),
        })?;
        let mut stop_rx = shutdown.subscribe();
        let stopped = async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        };
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = match tls {
            Some(tls) => {
                let listener =
                    crate::tls::TlsListener::new(listener, tls).map_err(|e| ListenError {
                        addr,
                        reason: e.to_string(),
                    })?;
                // tap_io: axum knows the peer address of a listener wrapped so, not of any other.
                let listener = axum::serve::ListenerExt::tap_io(listener, |_| {});
                tokio::spawn(async move {
                    axum::serve(listener, service)
                        .with_graceful_shutdown(stopped)
                        .await
                })
            }
            None => tokio::spawn(async move {
                axum::serve(listener, service)
                    .with_graceful_shutdown(stopped)
                    .await
            }),
        };
        Ok(Serving {
            addr,
            scheme,
            shutdown,
            task,
            grace,
        })
    }

    /// The bound address (the real port when the configuration said port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// Stops accepting, lets requests in flight finish (up to the grace period), and returns
    /// when the server is down.
    pub async fn stop(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        let Serving {
            mut task, grace, ..
        } = self;
        match tokio::time::timeout(grace, &mut task).await {
            Ok(joined) => joined.unwrap_or_else(|e| Err(std::io::Error::other(e))),
            Err(_) => {
                tracing::warn!(
                    "requests still running after the {grace:?} shutdown grace period: closing them"
                );
                task.abort();
                Ok(())
            }
        }
    }

    /// Serves until SIGTERM or SIGINT, then stops gracefully.
    pub async fn serve_until_signal(self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
        self.stop().await?;
        tracing::info!("stopped");
        Ok(())
    }
}
