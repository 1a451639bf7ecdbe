//! The text log format's field formatter: the same output as tracing-subscriber's
//! `DefaultFields`, byte for byte, with the fields of the per-request line (plain strings,
//! integers, booleans) written without the `fmt` machinery. Everything else, and every field
//! on a terminal (which gets colours), goes through `DefaultFields`' own visitor.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Writer};

/// Formats fields as `DefaultFields` does.
#[derive(Debug, Default)]
pub(super) struct Fields;

impl<'w> FormatFields<'w> for Fields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() {
            return DefaultFields::new().format_fields(writer, fields);
        }
        let mut v = Visitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct Visitor<'w> {
    writer: Writer<'w>,
    /// Nothing written yet (the first field gets no leading space).
    empty: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    /// The name `DefaultFields` writes, or `None` for the `log.` fields it skips.
    fn name(field: &Field) -> Option<&'static str> {
        let name = field.name();
        if name.starts_with("log.") {
            return None;
        }
        Some(name.strip_prefix("r#").unwrap_or(name))
    }

    /// Writes `name=` (nothing for the message) after the separating space.
    fn start(&mut self, name: &str) -> fmt::Result {
        if self.empty {
            self.empty = false;
        } else {
            self.writer.write_char(' ')?;
        }
        if name != "message" {
            self.writer.write_str(name)?;
            self.writer.write_char('=')?;
        }
        Ok(())
    }

    fn write(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let Some(name) = Self::name(field) else {
            return;
        };
        self.result = self.start(name).and_then(|()| value(&mut self.writer));
    }

    /// Anything else: `DefaultFields`' own visitor, continuing this line.
    fn delegate(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut v = DefaultVisitor::new(self.writer.by_ref(), self.empty);
        record(&mut v);
        self.result = v.finish();
        // It writes the field (after a space unless first) unless it skips it, as `log.*`.
        if Self::name(field).is_some() {
            self.empty = false;
        }
    }
}

/// Whether `Debug` prints `s` as itself between quotes: printable ASCII without `"` or `\`.
fn plain(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // A plain message is written as it is; anything else may need escaping (quotes,
        // control characters, the terminal escapes `DefaultFields` neutralises).
        if !plain(value) {
            return self.delegate(field, |v| v.record_str(field, value));
        }
        self.write(field, |w| {
            if field.name() == "message" {
                w.write_str(value)
            } else {
                w.write_char('"')?;
                w.write_str(value)?;
                w.write_char('"')
            }
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.delegate(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.delegate(field, |v| v.record_debug(field, value));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("outer")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// Every kind of field, in and out of the fast paths, in events and spans.
    fn events() {
        let error = Outer(std::io::Error::other("inner"));
        let span = tracing::info_span!("call", provider = "up", attempt = 2_u64, r#type = "x");
        let _entered = span.enter();
        tracing::info!(
            request_id = "0b5c-11",
            tenant = Option::<&str>::None,
            task = Some("chat"),
            quoted = "say \"hi\"\tnow",
            unicode = "caf\u{e9} \u{7}",
            empty = "",
            latency_ms = 12_u64,
            delta = -3_i64,
            ok = true,
            ratio = 0.25_f64,
            strategy = %"fastest",
            debugged = ?vec![1, 2],
            error = &error as &(dyn std::error::Error + 'static),
            "log.target" = "skipped",
            r#type = "raw",
            "Request answered."
        );
        tracing::warn!("only a message with {} and \"quotes\"", 3);
        // A message recorded as a string, with a terminal escape to neutralise.
        tracing::info!(
            message = "bell \u{7} esc \u{1b}[31m plain",
            latency_ms = 1_u64
        );
        tracing::info!(message = "a plain message", latency_ms = 2_u64);
        tracing::info!(
            latency_ms = 7_u64,
            "log.line" = 3_u64,
            "fields before the message"
        );
    }

    fn render<N>(fields: N) -> String
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let buf = Buf::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buf.clone())
            .with_ansi(false)
            .without_time()
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, events);
        let out = buf.0.lock().clone();
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn the_output_is_default_fields_output() {
        let ours = render(Fields);
        let theirs = render(DefaultFields::new());
        assert_eq!(ours, theirs);
        // The fast paths were taken and wrote what Debug writes.
        assert!(
            ours.contains(r#"request_id="0b5c-11" task="chat""#),
            "{ours}"
        );
        assert!(ours.contains("latency_ms=12 delta=-3 ok=true"), "{ours}");
        assert!(ours.contains(r#"quoted="say \"hi\"\tnow""#), "{ours}");
        assert!(ours.contains(r"bell \x07 esc \x1b[31m plain"), "{ours}");
        assert!(ours.contains("a plain message latency_ms=2"), "{ours}");
        assert_eq!(ours.lines().count(), 5, "{ours}");
    }
}
