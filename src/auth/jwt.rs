//! JWT checks with `jsonwebtoken`: algorithm allow-list, key by `kid` from a JWKS file or
//! the configured key, `exp` required, `nbf`, issuer and audience, clock skew; the tenant
//! from the configured claim.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::config::security::{JwtConfig, PublicKeyKind};
use crate::error::PoolError;

/// Three base64url parts separated by dots.
pub(super) fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}

pub(super) fn verify(cfg: &JwtConfig, token: &str) -> Result<Arc<str>, PoolError> {
    let bad = |m: String| PoolError::Unauthenticated(format!("JWT: {m}"));
    let header = jsonwebtoken::decode_header(token).map_err(|e| bad(e.to_string()))?;
    if !cfg.algorithms().contains(&header.alg) {
        return Err(bad(format!("algorithm {:?} is not accepted", header.alg)));
    }
    let from_jwks;
    let key: &DecodingKey = match header.alg {
        Algorithm::HS256 => cfg
            .hs256()
            .as_ref()
            .ok_or_else(|| bad("no HS256 secret".into()))?,
        alg => {
            let kind = if alg == Algorithm::RS256 {
                PublicKeyKind::Rsa
            } else {
                PublicKeyKind::Ec
            };
            let by_kid = header
                .kid
                .as_deref()
                .and_then(|kid| cfg.jwks().as_ref()?.find(kid));
            match (by_kid, &cfg.public_key()) {
                (Some(jwk), _) => {
                    from_jwks = DecodingKey::from_jwk(jwk).map_err(|e| bad(e.to_string()))?;
                    &from_jwks
                }
                (None, Some((key, k))) if *k == kind => key,
                _ => return Err(bad("no key for this token (`kid` unknown)".into())),
            }
        }
    };
    let mut v = Validation::new(header.alg);
    v.leeway = cfg.leeway().as_secs();
    v.validate_nbf = true;
    // A configured issuer or audience must be present in the token, not merely match
    // when present.
    let mut required = vec!["exp"];
    if cfg.issuer().is_some() {
        required.push("iss");
    }
    if !cfg.audience().is_empty() {
        required.push("aud");
    }
    v.set_required_spec_claims(&required);
    if let Some(iss) = &cfg.issuer() {
        v.set_issuer(&[iss]);
    }
    if cfg.audience().is_empty() {
        v.validate_aud = false;
    } else {
        v.set_audience(cfg.audience());
    }
    let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, key, &v)
        .map_err(|e| bad(e.to_string()))?;
    data.claims
        .get(cfg.tenant_claim())
        .and_then(serde_json::Value::as_str)
        .map(Arc::from)
        .ok_or_else(|| {
            bad(format!(
                "no `{}` claim naming the tenant",
                cfg.tenant_claim()
            ))
        })
}
