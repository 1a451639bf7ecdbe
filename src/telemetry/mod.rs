//! Logging and tracing set-up. `RUST_LOG` sets the log filter (default `info`); the format
//! comes from `server.log_format`; `[tracing]` adds OTLP trace export (`otel`).
//!
//! May import config only; the metric names in `metrics.rs` are used by every floor.

mod clock;
mod fields;
pub mod metrics;
pub mod otel;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::ops::TracingConfig;
use crate::config::raw::LogFormat;

/// Installs the global subscriber once (later calls are no-ops). With tracing enabled, call
/// it inside the Tokio runtime and keep the guard until the end: dropping it flushes spans.
pub fn init(format: LogFormat, tracing: &TracingConfig) -> Option<otel::Guard> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_timer(clock::Utc)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .fmt_fields(fields::Fields)
            .with_timer(clock::Utc)
            .with_writer(std::io::stderr)
            // Colour only on a terminal: a file or a pipe gets plain text.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
            .boxed(),
    };
    let provider = if tracing.enabled() {
        match otel::provider(tracing) {
            Ok(p) => Some(p),
            Err(error) => {
                // Logging is not up yet; traces are an aid, not a reason to refuse to serve.
                eprintln!("tracing disabled: {error}");
                None
            }
        }
    } else {
        None
    };
    match provider {
        Some(p) => {
            let (layer, guard) = otel::layer(p);
            let _ = tracing_subscriber::registry()
                .with(fmt)
                .with(layer)
                .try_init();
            tracing::info!(
                endpoint = %tracing.endpoint(),
                ratio = tracing.sampling_ratio(),
                "Exporting traces over OTLP."
            );
            Some(guard)
        }
        None => {
            let _ = tracing_subscriber::registry().with(fmt).try_init();
            None
        }
    }
}
