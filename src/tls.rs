//! TLS for both listeners (rustls, ring): certificate chain and key from PEM files, an
//! optional client CA for mTLS on the gRPC port, and reload without restart: every
//! [`RELOAD_EVERY`] the files' modification times are compared, and a changed set is loaded
//! and swapped in for new connections (a broken new set is logged and the old one kept).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_util::sync::CancellationToken;

use crate::config::security::TlsConfig;

/// How often the certificate files are checked for changes.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: String, message: String },
    #[error("TLS configuration refused: {0}")]
    Rustls(String),
}

/// The two listeners' server configs.
pub struct Loaded {
    pub http: Arc<ServerConfig>,
    pub grpc: Arc<ServerConfig>,
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads and checks the files of `cfg`.
pub fn load(cfg: &TlsConfig) -> Result<Loaded, TlsError> {
    let pem_err = |path: &std::path::Path, message: String| TlsError::Pem {
        path: path.display().to_string(),
        message,
    };
    let cert_pem = read(cfg.cert_file())?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(cfg.cert_file(), e.to_string()))?;
    if chain.is_empty() {
        return Err(pem_err(cfg.cert_file(), "no certificate found".into()));
    }
    let key_pem = read(cfg.key_file())?;
    // Never echo key material: only say what is wrong.
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| {
        pem_err(
            cfg.key_file(),
            "no usable private key (PKCS#8, PKCS#1 or SEC1 PEM)".into(),
        )
    })?;

    let rustls = |e: rustls::Error| TlsError::Rustls(e.to_string());
    let builder = || {
        ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(rustls)
    };
    let mut http = builder()?
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(rustls)?;
    http.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let grpc_builder = builder()?;
    let grpc_builder = match &cfg.grpc_client_ca_file() {
        Some(ca) => {
            let ca_pem = read(ca)?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&ca_pem) {
                let cert = cert.map_err(|e| pem_err(ca, e.to_string()))?;
                roots.add(cert).map_err(rustls)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Rustls(e.to_string()))?;
            grpc_builder.with_client_cert_verifier(verifier)
        }
        None => grpc_builder.with_no_client_auth(),
    };
    let mut grpc = grpc_builder.with_single_cert(chain, key).map_err(rustls)?;
    grpc.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Loaded {
        http: Arc::new(http),
        grpc: Arc::new(grpc),
    })
}

/// Which listener a config is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Http,
    Grpc,
}

/// The live TLS configs, swapped when the files change.
pub struct Reloading {
    cfg: TlsConfig,
    pub http: ArcSwap<ServerConfig>,
    pub grpc: ArcSwap<ServerConfig>,
    stamp: parking_lot::Mutex<Vec<Option<SystemTime>>>,
}

impl Reloading {
    pub fn new(cfg: TlsConfig) -> Result<Arc<Self>, TlsError> {
        let loaded = load(&cfg)?;
        let stamp = stamps(&cfg);
        Ok(Arc::new(Self {
            cfg,
            http: ArcSwap::new(loaded.http),
            grpc: ArcSwap::new(loaded.grpc),
            stamp: parking_lot::Mutex::new(stamp),
        }))
    }

    /// The current config of one listener.
    pub fn config(&self, side: Side) -> Arc<ServerConfig> {
        match side {
            Side::Http => self.http.load_full(),
            Side::Grpc => self.grpc.load_full(),
        }
    }

    /// Reloads if a file changed since the last look; returns whether new configs are live.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamps(&self.cfg);
        {
            let mut seen = self.stamp.lock();
            if *seen == now {
                return false;
            }
            *seen = now;
        }
        match load(&self.cfg) {
            Ok(l) => {
                self.http.store(l.http);
                self.grpc.store(l.grpc);
                tracing::info!("TLS certificate reloaded.");
                true
            }
            Err(error) => {
                tracing::error!(%error, "New TLS files refused; keeping the previous ones.");
                false
            }
        }
    }

    /// Checks the files every [`RELOAD_EVERY`] until shutdown.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(RELOAD_EVERY) => {
                    let this = Arc::clone(&self);
                    let _ = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
                }
            }
        }
    }
}

fn stamps(cfg: &TlsConfig) -> Vec<Option<SystemTime>> {
    [
        Some(cfg.cert_file()),
        Some(cfg.key_file()),
        cfg.grpc_client_ca_file(),
    ]
    .into_iter()
    .flatten()
    .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    .collect()
}
