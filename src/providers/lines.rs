//! Splits an upstream byte stream into lines (for SSE and NDJSON), without copying whole
//! bodies: each line is sliced out of one growing buffer.

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};

/// Longest line accepted from an upstream; protects against a server that never sends `\n`.
const MAX_LINE: usize = 4 * 1024 * 1024;

/// Yields each non-empty line (without `\n` or `\r\n`), and the last unterminated one.
pub(crate) fn lines<S, E>(body: S) -> impl Stream<Item = Result<Bytes, String>>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::fmt::Display,
{
    async_stream::stream! {
        let mut buf = BytesMut::new();
        futures::pin_mut!(body);
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => buf.extend_from_slice(&chunk),
                Err(e) => {
                    yield Err(e.to_string());
                    return;
                }
            }
            while let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let mut line = buf.split_to(pos + 1).freeze();
                line.truncate(line.len() - 1);
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                if !line.is_empty() {
                    yield Ok(line);
                }
            }
            if buf.len() > MAX_LINE {
                yield Err(format!("line longer than {MAX_LINE} bytes"));
                return;
            }
        }
        if !buf.is_empty() {
            yield Ok(buf.freeze());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn splits_across_chunks() {
        let parts: Vec<Result<Bytes, String>> = vec![
            Ok(Bytes::from_static(b"a\r\nbb")),
            Ok(Bytes::from_static(b"b\n\nc")),
            Ok(Bytes::from_static(b"dd")),
        ];
        let out: Vec<_> = lines(futures::stream::iter(parts)).collect().await;
        let out: Vec<_> = out.into_iter().map(|l| l.unwrap()).collect();
        assert_eq!(out, vec!["a", "bbb", "cdd"]);
    }

    #[tokio::test]
    async fn reports_body_errors() {
        let parts: Vec<Result<Bytes, String>> =
            vec![Ok(Bytes::from_static(b"a\n")), Err("reset".into())];
        let out: Vec<_> = lines(futures::stream::iter(parts)).collect().await;
        assert_eq!(out, vec![Ok(Bytes::from_static(b"a")), Err("reset".into())]);
    }
}
