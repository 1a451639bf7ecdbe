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
}

/// A running server.
pub struct Running {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub state: AppState,
    http: JoinHandle<()>,
    grpc: JoinHandle<()>,
}

/// Starts serving `config`; `path` is watched for hot reload when given.
pub async fn start(path: Option<PathBuf>, config: Config) -> Result<Running, StartError> {
    let server = config.server().clone();
    // Install the metrics recorder before anything records.
    let metrics = crate::telemetry::metrics::handle();
    let store = ConfigStore::new(path, Snapshot::prepare(config, None)?);
    let state = AppState::new(store.clone());

    let http_listener = bind(server.http_addr()).await?;
    let grpc_listener = bind(server.grpc_addr()).await?;
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
    let http = tokio::spawn(crate::listen::serve(
        http_listener,
        router,
        limits,
        http_tls.map(|t| (t, crate::tls::Side::Http)),
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
    let grpc = tokio::spawn(crate::listen::serve(
        grpc_listener,
        grpc_app,
        crate::listen::Limits {
            name: "grpc",
            ..limits
        },
        grpc_tls.map(|t| (t, crate::tls::Side::Grpc)),
        state.shutdown.clone(),
    ));

    tracing::info!(%http_addr, %grpc_addr, "Listening.");
    Ok(Running {
        http_addr,
        grpc_addr,
        state,
        http,
        grpc,
    })
}

impl Running {
    /// Stops accepting and waits up to `grace` for in-flight requests and streams; returns
    /// whether everything finished in time.
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.state.set_ready(false);
        self.state.shutdown.cancel();
        self.state.tasks.close();
        let state = self.state.clone();
        let drained = async move {
            let _ = self.http.await;
            let _ = self.grpc.await;
            state.tasks.wait().await;
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

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
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
