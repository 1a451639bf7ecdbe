//! The log lines' timestamp: UTC to the microsecond, `2026-12-02T21:40:05.123456Z`, the same
//! text as tracing-subscriber's `SystemTime` timer, written by humantime (digits into one
//! buffer) rather than by tracing-subscriber's `DateTime`, which formats each field through
//! `fmt` (about 2k instructions on the per-request line).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Utc;

/// 10000-01-01T00:00:00Z, where humantime stops.
const YEAR_10000: Duration = Duration::from_secs(253_402_300_800);

impl FormatTime for Utc {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        write_time(w, SystemTime::now())
    }
}

fn write_time(w: &mut Writer<'_>, now: SystemTime) -> fmt::Result {
    match now.duration_since(UNIX_EPOCH) {
        Ok(since) if since < YEAR_10000 => {
            write!(w, "{}", humantime::format_rfc3339_micros(now))
        }
        // Before 1970 humantime panics, after 9999 it refuses: tracing-subscriber's own
        // timer writes those clocks.
        _ => tracing_subscriber::fmt::time::SystemTime.format_time(w),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(secs: u64, micros: u64) -> String {
        let at = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros);
        let mut s = String::new();
        write_time(&mut Writer::new(&mut s), at).expect("formats");
        s
    }

    #[test]
    fn writes_utc_to_the_microsecond() {
        assert_eq!(text(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(text(951_782_400, 1), "2000-02-29T00:00:00.000001Z");
        assert_eq!(text(946_684_799, 999_999), "1999-12-31T23:59:59.999999Z");
        assert_eq!(text(1_709_251_199, 500_000), "2024-02-29T23:59:59.500000Z");
        assert_eq!(text(1_796_247_605, 123_456), "2026-12-02T21:40:05.123456Z");
        assert_eq!(text(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
        assert_eq!(text(253_402_300_799, 0), "9999-12-31T23:59:59.000000Z");
    }

    /// Clocks humantime cannot write (it panics before 1970 and fails after 9999) are
    /// written by tracing-subscriber's timer: a line is logged, not lost or a panic.
    #[test]
    fn clocks_out_of_humantimes_range_fall_back_to_tracings_timer() {
        let tracing_now = || {
            let mut s = String::new();
            tracing_subscriber::fmt::time::SystemTime
                .format_time(&mut Writer::new(&mut s))
                .expect("formats");
            s
        };
        for at in [UNIX_EPOCH - Duration::from_secs(1), UNIX_EPOCH + YEAR_10000] {
            let before = tracing_now();
            let mut s = String::new();
            write_time(&mut Writer::new(&mut s), at).expect("formats");
            let after = tracing_now();
            // tracing's timer writes the current time: the day it wrote around ours.
            assert_eq!(s.len(), before.len(), "{s}");
            assert!(s[..10] == before[..10] || s[..10] == after[..10], "{s}");
        }
    }

    /// The same text as tracing-subscriber's timer (read twice around ours, so that a
    /// second boundary between the reads shows as a mismatch of the whole-second part only).
    #[test]
    fn matches_tracing_subscribers_timer_to_the_second() {
        fn with(t: &dyn FormatTime) -> String {
            let mut s = String::new();
            t.format_time(&mut Writer::new(&mut s)).expect("formats");
            s
        }
        for _ in 0..3 {
            let before = with(&tracing_subscriber::fmt::time::SystemTime);
            let ours = with(&Utc);
            let after = with(&tracing_subscriber::fmt::time::SystemTime);
            assert_eq!(ours.len(), before.len());
            if before[..19] == after[..19] {
                assert_eq!(ours[..19], before[..19]);
                assert!(before[19..] <= ours[19..] && ours[19..] <= after[19..]);
                return;
            }
        }
        panic!("three second boundaries in a row");
    }
}
