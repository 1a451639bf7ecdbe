//! The HTTP client under every provider: one hyper client per provider, and each
//! endpoint's address parsed once, when the snapshot is built, so a call costs no URL parsing
//! and no request builder — only the URI assembled from parts and the request's headers.
//! Endpoints behind a proxy (the provider's `proxy`, or the environment's) are reached
//! through it: HTTPS through a CONNECT tunnel, HTTP in absolute form.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, PROXY_AUTHORIZATION, USER_AGENT};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::TokioIo;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use secrecy::ExposeSecret;

use crate::config::ProviderConfig;

/// An upstream's answer, its body not yet read.
pub(crate) type Response = http::Response<hyper::body::Incoming>;

type Connector = hyper_rustls::HttpsConnector<Proxied>;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const AGENT: HeaderValue =
    HeaderValue::from_static(concat!("llm-pool/", env!("CARGO_PKG_VERSION")));

/// Where an endpoint is, taken apart once: a call joins these with its path.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    scheme: Scheme,
    authority: Authority,
    /// A path prefix the endpoint URL carries (`http://host/proxy`), without a trailing `/`;
    /// usually empty.
    base: Box<str>,
}

impl Target {
    /// `url` as config checked it (`http://` or `https://`, a host, maybe a path).
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("`{url}`: {e}"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err(format!("`{url}` has no scheme or host"));
        };
        let base = uri.path().trim_end_matches('/');
        Ok(Self {
            scheme,
            authority,
            base: base.into(),
        })
    }

    /// The URI of `path` (`/v1/chat/completions`) on this endpoint.
    pub(crate) fn uri(&self, path: &'static str) -> Uri {
        let path = if self.base.is_empty() {
            PathAndQuery::from_static(path)
        } else {
            // A path prefix is rare; it costs one string per call.
            PathAndQuery::try_from(format!("{}{path}", self.base))
                .unwrap_or_else(|_| PathAndQuery::from_static(path))
        };
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path);
        // Scheme, authority and path were each valid alone, so together they are.
        Uri::from_parts(parts).unwrap_or_default()
    }
}

/// One provider's connection pool and the headers every call carries.
#[derive(Clone)]
pub(crate) struct Transport {
    client: Client<Connector, Full<Bytes>>,
    /// `Bearer <key>`, marked sensitive (never printed by `Debug`, kept out of HPACK tables).
    auth: Option<HeaderValue>,
    /// Which endpoints go through which proxy (`None`: none do).
    proxies: Option<Arc<Matcher>>,
}

/// The proxies of a provider: its own `proxy`, else the environment's (`None`: direct).
fn proxies(config: &ProviderConfig) -> Option<Arc<Matcher>> {
    match config.proxy().map(|p| p.expose_secret()) {
        Some("") => None,
        Some(url) => Some(Arc::new(Matcher::builder().all(url.to_owned()).build())),
        None => proxy_variables_set().then(|| Arc::new(Matcher::from_env())),
    }
}

/// Whether `HTTPS_PROXY`, `HTTP_PROXY` or `ALL_PROXY` (any case) is set.
fn proxy_variables_set() -> bool {
    ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"]
        .iter()
        .any(|name| {
            [name.to_string(), name.to_ascii_lowercase()]
                .iter()
                .any(|n| std::env::var_os(n).is_some_and(|v| !v.is_empty()))
        })
}

/// The TCP connector, through a proxy where one applies: a CONNECT tunnel for HTTPS
/// endpoints (TLS then runs end to end, over it), the proxy itself for HTTP endpoints
/// (marked so requests go in absolute form).
#[derive(Clone)]
pub(crate) struct Proxied {
    http: HttpConnector,
    proxies: Option<Arc<Matcher>>,
}

impl tower::Service<Uri> for Proxied {
    type Response = Conn;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = BoxFuture<'static, Result<Conn, Self::Error>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        // HttpConnector is always ready; each call uses its own clone.
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        use tower::ServiceExt;
        let via = self.proxies.as_ref().and_then(|m| m.intercept(&dst));
        let http = self.http.clone();
        Box::pin(async move {
            let Some(via) = via else {
                let io = http.oneshot(dst).await?;
                return Ok(Conn { io, proxied: false });
            };
            if dst.scheme() == Some(&Scheme::HTTPS) {
                let mut tunnel = Tunnel::new(via.uri().clone(), http);
                if let Some(auth) = via.basic_auth() {
                    tunnel = tunnel.with_auth(auth.clone());
                }
                let io = tunnel.oneshot(dst).await?;
                Ok(Conn { io, proxied: false })
            } else {
                let io = http.oneshot(via.uri().clone()).await?;
                Ok(Conn { io, proxied: true })
            }
        })
    }
}

/// A connection, to the endpoint or (for HTTP through a proxy) to the proxy.
pub(crate) struct Conn {
    io: TokioIo<tokio::net::TcpStream>,
    proxied: bool,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
}

impl Transport {
    pub(crate) fn new(config: &ProviderConfig, idle_timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout()));
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let tls = match builder
            .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))
        {
            Ok(b) => b,
            // ring offers the default protocol versions, so this does not happen; plain
            // webpki roots with the process's default provider are the same trust.
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots(),
        };
        let proxies = proxies(config);
        let connector = tls
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(Proxied {
                http,
                proxies: proxies.clone(),
            });
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(idle_timeout)
            .pool_max_idle_per_host(config.max_concurrency() as usize)
            .pool_timer(TokioTimer::new())
            .build(connector);
        let auth = config.api_key().and_then(|key| {
            let mut v = HeaderValue::try_from(format!("Bearer {}", key.expose_secret())).ok()?;
            v.set_sensitive(true);
            Some(v)
        });
        Self {
            client,
            auth,
            proxies,
        }
    }

    /// A POST of a JSON body, or a GET when `body` is `None`; `headers` are the call's own
    /// (trace context), to which the provider's are added.
    pub(crate) fn request(
        &self,
        uri: Uri,
        body: Option<Bytes>,
        mut headers: HeaderMap,
    ) -> Request<Full<Bytes>> {
        headers.reserve(3);
        let method = match body {
            Some(_) => {
                headers.insert(CONTENT_TYPE, JSON);
                Method::POST
            }
            None => Method::GET,
        };
        headers.insert(USER_AGENT, AGENT);
        if let Some(auth) = &self.auth {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        // HTTP through a proxy: the proxy reads its credentials from each request.
        if let Some(proxies) = &self.proxies
            && uri.scheme() == Some(&Scheme::HTTP)
            && let Some(auth) = proxies
                .intercept(&uri)
                .and_then(|v| v.basic_auth().cloned())
        {
            headers.insert(PROXY_AUTHORIZATION, auth);
        }
        let mut req = Request::new(Full::new(body.unwrap_or_default()));
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.headers_mut() = headers;
        req
    }

    pub(crate) async fn send(&self, req: Request<Full<Bytes>>) -> Result<Response, Failure> {
        self.client.request(req).await.map_err(Failure)
    }
}

/// The client connects to model servers directly. reqwest, which the pool used before,
/// read `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY`; an operator who relied on that is told
/// once, at start, rather than left to find out from failed calls.
/// Why a call got no answer (the connection, not the server, failed).
#[derive(Debug)]
pub(crate) struct Failure(hyper_util::client::legacy::Error);

impl Failure {
    /// The connection could not be made (refused, unreachable, TLS failed).
    pub(crate) fn is_connect(&self) -> bool {
        self.0.is_connect()
    }

    /// The connect timeout passed.
    pub(crate) fn is_timeout(&self) -> bool {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&self.0);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::TimedOut
            {
                return true;
            }
            source = e.source();
        }
        false
    }

    pub(crate) fn error(&self) -> &(dyn std::error::Error + 'static) {
        &self.0
    }
}

/// Reads a body up to `max` bytes; a longer body is an error, not a truncation. A body that
/// arrives in one piece is returned without a copy.
pub(crate) async fn read_bounded(resp: Response, max: usize) -> Result<Bytes, String> {
    if resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n > max)
    {
        return Err(format!("response larger than {max} bytes"));
    }
    match http_body_util::Limited::new(resp.into_body(), max)
        .collect()
        .await
    {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(format!("response larger than {max} bytes"))
        }
        Err(e) => Err(super::http::error_chain(&*e)),
    }
}

/// Reads at most the first `max` bytes of a body (for error messages).
pub(crate) async fn read_prefix(resp: Response, max: usize) -> Vec<u8> {
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        let room = max.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= max {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_joins_its_path_prefix() {
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(
            t.uri("/v1/chat/completions").to_string(),
            "http://127.0.0.1:8080/v1/chat/completions"
        );
        let t = Target::parse("https://example.com/proxy/").unwrap();
        assert_eq!(
            t.uri("/api/chat").to_string(),
            "https://example.com/proxy/api/chat"
        );
        assert!(Target::parse("127.0.0.1:8080/x").is_err());
    }
}
