//! Builds the state, binds both listeners, serves, and drains on shutdown: stop accepting,
//! let in-flight requests and streams finish within the grace period, then return.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::live::ConfigStore;
use crate::live::Snapshot;
use crate::state::AppState;

/// The server failed to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot build gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("{0}")]
    Config(#[from] crate::config::ConfigErrors),
    #[error("cannot start an accept thread: {0}")]
    Thread(std::io::Error),
}

/// A running server.
pub struct Running {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub state: AppState,
    http: JoinHandle<()>,
    grpc: JoinHandle<()>,
    /// The other accept threads (thread-per-core), each serving both ports.
    threads: Vec<AcceptThread>,
    /// Lets the accept threads' runtimes end, once nothing runs on any of them.
    exit: tokio_util::sync::CancellationToken,
}

/// An accept thread: its runtime keeps running until [`Running::exit`], after its
/// listeners have drained (`served`). Until every thread has drained none may end: a
/// request on one thread may use a pooled upstream connection whose task runs on another.
struct AcceptThread {
    /// Its listeners have drained.
    served: tokio::sync::oneshot::Receiver<()>,
    /// Its runtime has ended (dropped unsent if the thread panicked).
    finished: tokio::sync::oneshot::Receiver<()>,
}

/// Starts serving `config`; `path` is watched for hot reload when given.
pub async fn start(path: Option<PathBuf>, config: Config) -> Result<Running, StartError> {
    start_threads(path, config, 1).await
}

/// [`start`] with `threads` accept threads (thread-per-core): this runtime's, and
/// `threads - 1` more, each a single-threaded runtime of its own with its own listeners on
/// the same ports (`SO_REUSEPORT`: the kernel spreads new connections over them). Every
/// thread serves the same state; a connection's requests, and the tasks they spawn, stay
/// on the thread that accepted it.
pub async fn start_threads(
    path: Option<PathBuf>,
    config: Config,
    threads: usize,
) -> Result<Running, StartError> {
    let server = config.server().clone();
    let reuse = threads > 1;
    // Install the metrics recorder before anything records.
    let metrics = crate::telemetry::metrics::handle();
    let store = ConfigStore::new(path, Snapshot::prepare(config, None)?);
    let state = AppState::new(store.clone());

    let http_listener = bind(server.http_addr(), reuse)?;
    let grpc_listener = bind(server.grpc_addr(), reuse)?;
    let http_addr = local_addr(&http_listener, server.http_addr());
    let grpc_addr = local_addr(&grpc_listener, server.grpc_addr());

    let prompts = vec![server.prompts_dir().to_path_buf()];
    if let Some(handle) = metrics {
        // Histograms' summaries need periodic upkeep (axum's prometheus-metrics example).
        let shutdown = state.shutdown.clone();
        state.tasks.spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(5)) => handle.run_upkeep(),
                }
            }
        });
    }
    state.tasks.spawn(crate::live::health::run(
        store.clone(),
        state.shutdown.clone(),
    ));
    state
        .tasks
        .spawn(crate::registry::run(store.clone(), state.shutdown.clone()));
    state.tasks.spawn(crate::accuracy_sync::run(
        store.clone(),
        state.shutdown.clone(),
    ));
    state.tasks.spawn(crate::live::watch::start(
        store,
        prompts,
        state.shutdown.clone(),
    ));

    let (http_tls, grpc_tls) = match server.tls() {
        Some(cfg) => {
            let tls = crate::tls::Reloading::new(cfg.clone())?;
            state
                .tasks
                .spawn(Arc::clone(&tls).watch(state.shutdown.clone()));
            (Some(tls.clone()), Some(tls))
        }
        None => (None, None),
    };
    let limits = crate::listen::Limits {
        header_read_timeout: server.header_read_timeout(),
        max_header_bytes: server.max_header_bytes(),
        max_connections: server.max_connections(),
        name: "http",
    };

    let router = crate::api::http::router(state.clone());
    let http_tls = http_tls.map(|t| (t, crate::tls::Side::Http));
    let (http_open, grpc_open) = (
        crate::listen::Connections::default(),
        crate::listen::Connections::default(),
    );
    let http = tokio::spawn(crate::listen::serve(
        http_listener,
        router.clone(),
        limits,
        http_tls.clone(),
        http_open.clone(),
        state.shutdown.clone(),
    ));

    let routes = crate::api::grpc::routes(state.clone()).await?;
    let grpc_app = routes
        .into_axum_router()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::api::grpc::auth::layer,
        ))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            server.header_read_timeout(),
        ))
        .layer(axum::middleware::from_fn(
            crate::telemetry::otel::trace_request,
        ));
    let grpc_limits = crate::listen::Limits {
        name: "grpc",
        ..limits
    };
    let grpc_tls = grpc_tls.map(|t| (t, crate::tls::Side::Grpc));
    let grpc = tokio::spawn(crate::listen::serve(
        grpc_listener,
        grpc_app.clone(),
        grpc_limits,
        grpc_tls.clone(),
        grpc_open.clone(),
        state.shutdown.clone(),
    ));

    let mut accept = Vec::with_capacity(threads.saturating_sub(1));
    let exit = tokio_util::sync::CancellationToken::new();
    for i in 1..threads {
        let http_side = Listener {
            addr: http_addr,
            app: router.clone(),
            limits,
            tls: http_tls.clone(),
            open: http_open.clone(),
        };
        let grpc_side = Listener {
            addr: grpc_addr,
            app: grpc_app.clone(),
            limits: grpc_limits,
            tls: grpc_tls.clone(),
            open: grpc_open.clone(),
        };
        match accept_thread(
            i,
            http_side,
            grpc_side,
            state.shutdown.clone(),
            exit.clone(),
        )
        .await
        {
            Ok(t) => accept.push(t),
            Err(e) => {
                // Every listener already bound is closed before the error is returned: a
                // retry must not share the ports with listeners that are going away.
                state.shutdown.cancel();
                exit.cancel();
                for t in accept {
                    let _ = t.finished.await;
                }
                let _ = http.await;
                let _ = grpc.await;
                return Err(e);
            }
        }
    }

    tracing::info!(%http_addr, %grpc_addr, threads, "Listening.");
    Ok(Running {
        http_addr,
        grpc_addr,
        state,
        http,
        grpc,
        threads: accept,
        exit,
    })
}

/// What an accept thread serves on one port.
struct Listener {
    addr: SocketAddr,
    app: axum::Router,
    limits: crate::listen::Limits,
    tls: Option<(Arc<crate::tls::Reloading>, crate::tls::Side)>,
    /// The port's connections, counted with every other thread's.
    open: crate::listen::Connections,
}

/// Starts accept thread `i`: its runtime, its listeners (bound there, so that its own
/// reactor drives them), both ports served until `shutdown`; then, its connections
/// drained, it says so and keeps its runtime (and the tasks on it) running until `exit`.
/// Returns once its listeners are bound.
async fn accept_thread(
    i: usize,
    http: Listener,
    grpc: Listener,
    shutdown: tokio_util::sync::CancellationToken,
    exit: tokio_util::sync::CancellationToken,
) -> Result<AcceptThread, StartError> {
    let (bound, on_bound) = tokio::sync::oneshot::channel();
    let (served, on_served) = tokio::sync::oneshot::channel();
    let (finished, on_finished) = tokio::sync::oneshot::channel::<()>();
    let addr = http.addr;
    let spawn = std::thread::Builder::new()
        .name(format!("llm-pool-accept-{i}"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = bound.send(Err(StartError::Thread(e)));
                    return;
                }
            };
            runtime.block_on(async move {
                let listeners = bind(http.addr, true).and_then(|h| Ok((h, bind(grpc.addr, true)?)));
                let (h, g) = match listeners {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = bound.send(Err(e));
                        return;
                    }
                };
                let _ = bound.send(Ok(()));
                tokio::join!(
                    crate::listen::serve(
                        h,
                        http.app,
                        http.limits,
                        http.tls,
                        http.open,
                        shutdown.clone()
                    ),
                    crate::listen::serve(g, grpc.app, grpc.limits, grpc.tls, grpc.open, shutdown),
                );
                let _ = served.send(());
                exit.cancelled().await;
            });
            drop(runtime);
            let _ = finished.send(());
        });
    // Detached: shutdown waits for `finished`, so that no wait outlasts its grace period.
    drop(spawn.map_err(StartError::Thread)?);
    match on_bound.await {
        Ok(Ok(())) => Ok(AcceptThread {
            served: on_served,
            finished: on_finished,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(StartError::Thread(std::io::Error::other(format!(
            "accept thread {i} ended before binding {addr}"
        )))),
    }
}

impl Running {
    /// Stops accepting and waits up to `grace` for in-flight requests and streams; returns
    /// whether everything finished in time.
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.state.set_ready(false);
        self.state.shutdown.cancel();
        self.state.tasks.close();
        let state = self.state.clone();
        // The accept threads end when this does, drained or not (the grace ran out).
        let _exit = self.exit.clone().drop_guard();
        let (threads, exit) = (self.threads, self.exit);
        let drained = async move {
            let _ = self.http.await;
            let _ = self.grpc.await;
            let mut finished = Vec::with_capacity(threads.len());
            for (i, t) in threads.into_iter().enumerate() {
                if t.served.await.is_err() {
                    tracing::error!(thread = i + 1, "An accept thread ended without draining.");
                }
                finished.push(t.finished);
            }
            state.tasks.wait().await;
            exit.cancel();
            for f in finished {
                let _ = f.await;
            }
        };
        let finished = tokio::time::timeout(grace, drained).await.is_ok();
        if finished {
            tracing::info!("Shut down cleanly.");
        } else {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "Shutdown grace ran out; exiting."
            );
        }
        finished
    }
}

/// A listener on `addr` (inside a runtime); with `reuse_port`, one of several on the port.
fn bind(addr: SocketAddr, reuse_port: bool) -> Result<TcpListener, StartError> {
    let listen = || {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // As std's and tokio's `bind` do on Unix: a restarted server can bind at once. (Their
        // backlog is 128; this one takes bursts of new connections.)
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        #[cfg(unix)]
        if reuse_port {
            socket.set_reuseport(true)?;
        }
        socket.bind(addr)?;
        socket.listen(1024)
    };
    listen().map_err(|source| StartError::Bind { addr, source })
}

fn local_addr(listener: &TcpListener, fallback: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(fallback)
}

/// Waits for SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("Shutdown signal received; draining.");
}
