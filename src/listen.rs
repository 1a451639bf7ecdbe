//! The accept loop of both listeners (hyper-util, HTTP/1.1 and HTTP/2 on one port), with
//! what `axum::serve` does not offer: TLS, a deadline for a new connection's first byte and
//! for every request head (slow-loris), a bound on header size, a cap on open connections
//! (idle keep-alive connections are closed first to make room), and graceful shutdown that
//! lets open connections finish.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Connection limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send the first byte of a connection, the TLS handshake, and each request
    /// head (HTTP/1).
    pub header_read_timeout: Duration,
    /// Largest request head in bytes.
    pub max_header_bytes: usize,
    /// Most open connections (0: no cap).
    pub max_connections: usize,
    /// The listener's name in metrics (`http`, `grpc`).
    pub name: &'static str,
}

/// The open connections of one port, shared by every listener on it (thread-per-core's
/// accept threads each have one), so that `max_connections` caps the port.
#[derive(Clone, Default)]
pub struct Connections(Arc<Open>);

/// Serves `app` on `listener` until `shutdown`, then waits for open connections (the
/// caller bounds that wait with its grace period).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    tls: Option<(Arc<crate::tls::Reloading>, crate::tls::Side)>,
    open: Connections,
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
    let connections = TaskTracker::new();
    let open = open.0;
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
        let conn = if limits.max_connections > 0 {
            match open.admit(limits.max_connections) {
                Some(conn) => Some(conn),
                None => {
                    ::metrics::counter!(
                        crate::telemetry::metrics::LISTENER_REFUSED,
                        "listener" => limits.name,
                        "limit" => "connections"
                    )
                    .increment(1);
                    connections.spawn(refuse(tcp, tls.is_some(), limits.header_read_timeout));
                    continue;
                }
            }
        } else {
            None
        };
        let (builder, tls, shutdown) = (Arc::clone(&builder), tls.clone(), shutdown.clone());
        let app = app.clone();
        connections.spawn(async move {
            if !first_byte(&tcp, limits.header_read_timeout).await {
                return;
            }
            match tls {
                None => drive(&builder, TokioIo::new(tcp), app, conn, shutdown).await,
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
                    drive(&builder, TokioIo::new(stream), app, conn, shutdown).await;
                }
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Serves one connection until it ends; on shutdown, or when the listener needs its room
/// (`conn`'s close signal), finishes the requests in flight and closes.
async fn drive<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: TokioIo<I>,
    app: axum::Router,
    conn: Option<Registered>,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // One loop for both service types (the tracked one only under a connection cap).
    macro_rules! run {
        ($served:expr, $close:expr) => {{
            let served = $served.into_owned();
            let mut served = std::pin::pin!(served);
            let asked_to_close = async {
                match $close {
                    Some(c) => c.close.notified().await,
                    None => std::future::pending().await,
                }
            };
            let mut asked_to_close = std::pin::pin!(asked_to_close);
            let mut closing = false;
            loop {
                tokio::select! {
                    _ = served.as_mut() => break,
                    () = shutdown.cancelled(), if !closing => {
                        closing = true;
                        served.as_mut().graceful_shutdown();
                    }
                    () = asked_to_close.as_mut(), if !closing => {
                        closing = true;
                        served.as_mut().graceful_shutdown();
                    }
                }
            }
        }};
    }
    match conn.as_ref().map(|c| Arc::clone(&c.conn)) {
        None => run!(
            builder.serve_connection_with_upgrades(io, TowerToHyperService::new(app)),
            None::<&Conn>
        ),
        Some(c) => run!(
            builder.serve_connection_with_upgrades(
                io,
                TowerToHyperService::new(Tracked {
                    app,
                    conn: Arc::clone(&c),
                }),
            ),
            Some(&*c)
        ),
    }
    drop(conn);
}

/// The open connections of a listener with a connection cap.
#[derive(Default)]
struct Open {
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

/// One open connection: requests in flight on it, and the signal to close it.
#[derive(Default)]
struct Conn {
    active: AtomicUsize,
    closing: AtomicBool,
    close: Notify,
}

/// An admitted connection; dropped when it ends, which frees its room.
struct Registered {
    open: Arc<Open>,
    id: u64,
    conn: Arc<Conn>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.open.conns.lock().remove(&self.id);
    }
}

impl Open {
    /// Room for a new connection under `cap`: at the cap, an idle connection is asked to
    /// close (the new one is admitted while it does); `None` when none is idle.
    fn admit(self: &Arc<Self>, cap: usize) -> Option<Registered> {
        let mut conns = self.conns.lock();
        if conns.len() >= cap {
            let idle = conns.values().find(|c| {
                c.active.load(Ordering::Acquire) == 0 && !c.closing.load(Ordering::Acquire)
            })?;
            idle.closing.store(true, Ordering::Release);
            // `notify_one` keeps the permit if the connection is not waiting yet.
            idle.close.notify_one();
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::default());
        conns.insert(id, Arc::clone(&conn));
        Some(Registered {
            open: Arc::clone(self),
            id,
            conn,
        })
    }
}

/// The router, counting the requests in flight on one connection (until each response's
/// body is done) so the listener knows which connections are idle.
#[derive(Clone)]
struct Tracked {
    app: axum::Router,
    conn: Arc<Conn>,
}

/// A request in flight on a connection.
struct Active(Arc<Conn>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl tower::Service<http::Request<hyper::body::Incoming>> for Tracked {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<hyper::body::Incoming>) -> Self::Future {
        self.conn.active.fetch_add(1, Ordering::AcqRel);
        let active = Active(Arc::clone(&self.conn));
        let call = tower::Service::call(&mut self.app, req);
        Box::pin(async move {
            let resp = call.await?;
            Ok(holding(resp, active))
        })
    }
}

/// The response, holding `keep` until its body is done or dropped (streams included).
pub(crate) fn holding<T: Send + 'static>(
    resp: axum::response::Response,
    keep: T,
) -> axum::response::Response {
    use http_body_util::BodyExt;
    resp.map(|body| {
        axum::body::Body::new(body.map_frame(move |frame| {
            let _held = &keep;
            frame
        }))
    })
}

/// Answers a connection over the cap: on plain HTTP/1, a 503 with `Retry-After` once the
/// request head arrived; otherwise (TLS, HTTP/2) it is closed.
async fn refuse(mut tcp: TcpStream, tls: bool, within: Duration) {
    const BODY: &str = r#"{"error":{"code":"overloaded","message":"overloaded: the listener is at server.max_connections; retry after 1 s"}}"#;
    let mut head = [0u8; 4];
    let http1 = !tls
        && matches!(
            tokio::time::timeout(within, tcp.peek(&mut head)).await,
            Ok(Ok(n)) if n == 4 && &head != b"PRI " && head.iter().all(u8::is_ascii_uppercase)
        );
    if http1 {
        let reply = format!(
            "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
            BODY.len()
        );
        let _ = tokio::time::timeout(within, async {
            // Read what was sent, so closing does not reset the connection before the
            // client reads the answer.
            let mut sink = [0u8; 16 * 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut tcp, &mut sink).await;
            tcp.write_all(reply.as_bytes()).await?;
            tcp.shutdown().await
        })
        .await;
    }
}

/// Waits for a new connection's first byte; `false` if it does not come in time.
async fn first_byte(tcp: &TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(within, tcp.peek(&mut buf)).await,
        Ok(Ok(n)) if n > 0
    )
}
