//! The router's front, one service around every route (and the fallback): each request has an
//! id — the caller's `x-request-id`, or a new one — and each response carries it, errors
//! included; a request whose declared length exceeds the body limit is refused (413) before its
//! body is read, and before `100 Continue` invites the client to send it.
//!
//! It takes the place of tower-http's `SetRequestId` and `PropagateRequestId` and of a
//! `from_fn` layer, which boxed its future and cloned the inner service on every request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::response::Response;
use http::{HeaderMap, HeaderValue, Request};
use tower::{Layer, Service};

use super::REQUEST_ID;
use crate::error::PoolError;

/// Builds [`Front`] around each route.
#[derive(Clone, Copy)]
pub(crate) struct FrontLayer {
    /// The body limit, in bytes.
    pub(crate) max_body: usize,
}

impl<S> Layer<S> for FrontLayer {
    type Service = Front<S>;

    fn layer(&self, inner: S) -> Front<S> {
        Front {
            inner,
            max_body: self.max_body,
        }
    }
}

/// See the module's documentation.
#[derive(Clone)]
pub(crate) struct Front<S> {
    inner: S,
    max_body: usize,
}

impl<S, B> Service<Request<B>> for Front<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = FrontFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let id = match req.headers().get(&REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = new_id();
                req.headers_mut().insert(REQUEST_ID.clone(), id.clone());
                id
            }
        };
        if declared_length(req.headers()).is_some_and(|n| n > self.max_body as u64) {
            let e = PoolError::BodyTooLarge {
                limit: self.max_body,
            };
            let mut response = super::error_for_path(req.uri().path(), e);
            response.headers_mut().insert(REQUEST_ID.clone(), id);
            return FrontFuture::Refused {
                response: Some(response),
            };
        }
        FrontFuture::Inner {
            future: self.inner.call(req),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's response with the request id added, or the refusal.
    #[project = Projected]
    pub(crate) enum FrontFuture<F> {
        Inner { #[pin] future: F, id: Option<HeaderValue> },
        Refused { response: Option<Response> },
    }
}

impl<F, E> Future for FrontFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            Projected::Inner { future, id } => {
                let mut response = ready!(future.poll(cx))?;
                // A response that names its own id (none does today) keeps it.
                if let Some(id) = id.take()
                    && !response.headers().contains_key(&REQUEST_ID)
                {
                    response.headers_mut().insert(REQUEST_ID.clone(), id);
                }
                Poll::Ready(Ok(response))
            }
            Projected::Refused { response } => {
                Poll::Ready(Ok(response.take().expect("a refusal is polled once")))
            }
        }
    }
}

/// A new request id: a random UUID (v4) from the thread's fast generator. An id names a
/// request in logs and traces; it is not a secret, so it needs no system call for entropy.
fn new_id() -> HeaderValue {
    // A UUID is visible ASCII, always a valid header value.
    HeaderValue::try_from(crate::types::new_request_id())
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;

    use axum::body::Body;
    use axum::response::IntoResponse;
    use parking_lot::Mutex;
    use tower::ServiceExt;

    use super::*;

    /// The front around a handler that records the id it saw and answers 200.
    fn front(
        seen: &Arc<Mutex<Vec<String>>>,
    ) -> Front<
        impl Service<Request<Body>, Response = Response, Error = Infallible, Future = impl Send> + Clone,
    > {
        let seen = Arc::clone(seen);
        FrontLayer { max_body: 100 }.layer(tower::service_fn(move |req: Request<Body>| {
            let seen = Arc::clone(&seen);
            async move {
                let id = req.headers()[&REQUEST_ID].to_str().unwrap().to_owned();
                seen.lock().push(id);
                Ok::<_, Infallible>("ok".into_response())
            }
        }))
    }

    fn request(id: Option<&str>, length: Option<&str>) -> Request<Body> {
        let mut b = Request::post("/v1/chat/completions");
        if let Some(id) = id {
            b = b.header(&REQUEST_ID, id);
        }
        if let Some(n) = length {
            b = b.header(http::header::CONTENT_LENGTH, n);
        }
        b.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn the_caller_s_id_is_kept_and_returned() {
        let seen = Arc::default();
        let resp = front(&seen)
            .oneshot(request(Some("abc-1"), None))
            .await
            .unwrap();
        assert_eq!(resp.headers()[&REQUEST_ID], "abc-1");
        assert_eq!(*seen.lock(), ["abc-1"]);
    }

    #[tokio::test]
    async fn a_request_without_an_id_gets_a_new_one_seen_by_the_handler_and_returned() {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let svc = front(&seen);
        let a = svc
            .clone()
            .oneshot(request(None, Some("10")))
            .await
            .unwrap();
        let b = svc.oneshot(request(None, None)).await.unwrap();
        let ids = seen.lock().clone();
        assert_eq!(ids.len(), 2);
        assert_eq!(a.headers()[&REQUEST_ID], ids[0].as_str());
        assert_eq!(b.headers()[&REQUEST_ID], ids[1].as_str());
        assert_ne!(ids[0], ids[1]);
        assert_eq!(ids[0].len(), 36, "a UUID: {}", ids[0]);
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_with_the_id_and_never_handled() {
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let svc = front(&seen);
        let resp = svc
            .clone()
            .oneshot(request(Some("big-1"), Some("101")))
            .await
            .unwrap();
        assert_eq!(resp.status(), 413);
        assert_eq!(resp.headers()[&REQUEST_ID], "big-1");
        let resp = svc
            .clone()
            .oneshot(request(None, Some("101")))
            .await
            .unwrap();
        assert_eq!(resp.status(), 413);
        assert!(resp.headers().contains_key(&REQUEST_ID));
        // At the limit, or an unreadable length (hyper refuses those first), it is handled.
        let resp = svc.oneshot(request(None, Some("100"))).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(seen.lock().len(), 1);
    }
}
