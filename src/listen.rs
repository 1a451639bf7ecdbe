//! The accept loop of both listeners (hyper-util, HTTP/1.1 and HTTP/2 on one port), with
//! what `axum::serve` does not offer: TLS, a deadline for a new connection's first byte and
//! for every request head (slow-loris), a bound on header size, and graceful shutdown that
//! lets open connections finish.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Connection limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send the first byte of a connection, the TLS handshake, and each request
    /// head (HTTP/1).
    pub header_read_timeout: Duration,
    /// Largest request head in bytes.
    pub max_header_bytes: usize,
}

/// Serves `app` on `listener` until `shutdown`, then waits for open connections (the
/// caller bounds that wait with its grace period).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    tls: Option<(Arc<crate::tls::Reloading>, crate::tls::Side)>,
    shutdown: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper's floor for this buffer is 8 KiB; config validation enforces it.
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // Dead or stalled HTTP/2 peers are found and closed.
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let service = TowerToHyperService::new(app);
    loop {
        let (tcp, _peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (builder, service, tls) = (Arc::clone(&builder), service.clone(), tls.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            if !first_byte(&tcp, limits.header_read_timeout).await {
                return;
            }
            match tls {
                None => {
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                        .into_owned();
                    let _ = watcher.watch(conn).await;
                }
                Some(tls) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls.0.config(tls.1));
                    let stream = match tokio::time::timeout(
                        limits.header_read_timeout,
                        acceptor.accept(tcp),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        // A failed or stalled handshake: nothing to answer.
                        Ok(Err(error)) => {
                            tracing::debug!(%error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    let _ = watcher.watch(conn).await;
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Waits for a new connection's first byte; `false` if it does not come in time.
async fn first_byte(tcp: &TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(within, tcp.peek(&mut buf)).await,
        Ok(Ok(n)) if n > 0
    )
}
