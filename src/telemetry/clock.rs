//! The log lines' timestamp: UTC to the microsecond, `2026-12-02T21:40:05.123456Z`, the same
//! text as tracing-subscriber's `SystemTime` timer, written from digits rather than through
//! the `fmt` machinery (which cost the per-request line about 2k instructions).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;

/// See the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Utc;

impl FormatTime for Utc {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => match rfc3339(since.as_secs(), since.subsec_micros()) {
                Some(text) => w.write_str(text.as_str()),
                None => tracing_subscriber::fmt::time::SystemTime.format_time(w),
            },
            // Before 1970: tracing-subscriber's own timer writes it.
            Err(_) => tracing_subscriber::fmt::time::SystemTime.format_time(w),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, for years 1970 to 9999 (`None` after).
fn rfc3339(secs: u64, micros: u32) -> Option<Stamp> {
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil(i64::try_from(days).ok()?);
    if year > 9999 {
        return None;
    }
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    digits(&mut b[0..4], u64::try_from(year).ok()?);
    digits(&mut b[5..7], u64::from(month));
    digits(&mut b[8..10], u64::from(day));
    digits(&mut b[11..13], of_day / 3600);
    digits(&mut b[14..16], of_day % 3600 / 60);
    digits(&mut b[17..19], of_day % 60);
    digits(&mut b[20..26], u64::from(micros));
    Some(Stamp(b))
}

/// A formatted timestamp (ASCII digits and separators only).
struct Stamp([u8; 27]);

impl Stamp {
    fn as_str(&self) -> &str {
        // Only ASCII is ever written into it.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

/// Writes `n` right-aligned into `out`, zero-padded (the leading digits of a larger `n` are
/// dropped; callers pass values that fit).
fn digits(out: &mut [u8], mut n: u64) {
    for d in out.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// (year, month, day) of a day count since 1970-01-01, in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(secs: u64, micros: u32) -> String {
        rfc3339(secs, micros)
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default()
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
        assert!(
            rfc3339(253_402_300_800, 0).is_none(),
            "year 10000 is left to tracing"
        );
    }

    /// Every day from 1970 to 2100 against a calendar counted day by day.
    #[test]
    fn every_day_matches_a_counted_calendar() {
        let (mut y, mut m, mut d) = (1970_i64, 1_u32, 1_u32);
        for days in 0..47_847 {
            assert_eq!(civil(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                (d, m) = (1, m + 1);
                if m > 12 {
                    (m, y) = (1, y + 1);
                }
            }
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
