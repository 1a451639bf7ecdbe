//! HMAC request signing, done for the caller: a transport under the generated client that
//! reads each call's body (one framed message: every `LlmPool` call sends exactly one),
//! signs method, path, timestamp, nonce and body, and sends the signature headers with it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hmac::{KeyInit, Mac};
use http::HeaderValue;
use http_body_util::{BodyExt, Full};
use sha2::{Digest, Sha256};
use tonic::body::Body;
use tonic::transport::Channel;

/// HMAC: the signing tenant.
pub const TENANT: &str = "x-llm-pool-tenant";
/// HMAC: Unix seconds when the request was signed.
pub const TIMESTAMP: &str = "x-llm-pool-timestamp";
/// HMAC: a value unique to the request, so that two identical calls in one second are not
/// taken for a replay.
pub const NONCE: &str = "x-llm-pool-nonce";
/// HMAC: hex HMAC-SHA256 of the signing string under the tenant's secret.
pub const SIGNATURE: &str = "x-llm-pool-signature";

/// What an HMAC signature covers: method, path with query, timestamp and the body's
/// SHA-256 (hex), one per line, then the nonce on a fifth line when there is one (no
/// trailing newline). For gRPC the body is the HTTP/2 request body (the framed message).
pub fn signing_string(
    method: &str,
    path_and_query: &str,
    timestamp: &str,
    nonce: Option<&str>,
    body: &[u8],
) -> String {
    let body = hex::encode(Sha256::digest(body));
    match nonce {
        Some(nonce) => format!("{method}\n{path_and_query}\n{timestamp}\n{body}\n{nonce}"),
        None => format!("{method}\n{path_and_query}\n{timestamp}\n{body}"),
    }
}

/// The hex HMAC-SHA256 of [`signing_string`] under `secret`: what the pool checks.
pub fn sign(
    secret: &[u8],
    method: &str,
    path_and_query: &str,
    timestamp: &str,
    nonce: Option<&str>,
    body: &[u8],
) -> String {
    // HMAC takes keys of any length: `new_from_slice` does not fail.
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(signing_string(method, path_and_query, timestamp, nonce, body).as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// A tenant's HMAC credentials.
pub(crate) struct Signer {
    tenant: HeaderValue,
    secret: Vec<u8>,
    /// Random per client, then counted: unique nonces without a lock.
    nonce_prefix: u64,
    counter: std::sync::atomic::AtomicU64,
}

impl Signer {
    pub(crate) fn new(tenant: &str, secret: Vec<u8>) -> Option<Self> {
        Some(Self {
            tenant: HeaderValue::from_str(tenant).ok()?,
            secret,
            nonce_prefix: fastrand::u64(..),
            counter: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn nonce(&self) -> String {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{:016x}-{n}", self.nonce_prefix)
    }
}

/// The channel, signing each request when there is a [`Signer`].
#[derive(Clone)]
pub(crate) struct Transport {
    channel: Channel,
    signer: Option<Arc<Signer>>,
}

impl Transport {
    pub(crate) fn new(channel: Channel, signer: Option<Arc<Signer>>) -> Self {
        Self { channel, signer }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<http::Request<Body>> for Transport {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.channel.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let Some(signer) = self.signer.clone() else {
            let call = self.channel.call(req);
            return Box::pin(async move { call.await.map_err(Into::into) });
        };
        // The channel that was polled ready goes with the call; a clone stays for the next.
        let fresh = self.channel.clone();
        let mut channel = std::mem::replace(&mut self.channel, fresh);
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let body: Bytes = body.collect().await?.to_bytes();
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .to_string();
            let nonce = signer.nonce();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let signature = sign(
                &signer.secret,
                parts.method.as_str(),
                path,
                &timestamp,
                Some(&nonce),
                &body,
            );
            let headers = &mut parts.headers;
            headers.insert(TENANT, signer.tenant.clone());
            headers.insert(TIMESTAMP, HeaderValue::from_str(&timestamp)?);
            headers.insert(NONCE, HeaderValue::from_str(&nonce)?);
            headers.insert(SIGNATURE, HeaderValue::from_str(&signature)?);
            let req = http::Request::from_parts(parts, Body::new(Full::new(body)));
            channel.call(req).await.map_err(Into::into)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::sign;

    #[test]
    fn the_signing_string_is_four_lines_or_five_with_a_nonce() {
        let whole = |s: &str| {
            use hmac::{KeyInit, Mac};
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"k").expect("key");
            mac.update(s.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        };
        let body = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"; // "foo"
        assert_eq!(
            sign(b"k", "POST", "/p?q=1", "17", None, b"foo"),
            whole(&format!("POST\n/p?q=1\n17\n{body}"))
        );
        assert_eq!(
            sign(b"k", "POST", "/p?q=1", "17", Some("n"), b"foo"),
            whole(&format!("POST\n/p?q=1\n17\n{body}\nn"))
        );
    }
}
