//! Log timestamps as sortable integers, and the `--since`/`--until` bounds.
//!
//! Exim writes `YYYY-MM-DD HH:MM:SS` in the server's local time (optionally `.mmm` with
//! `+millisec`, and ` +HHMM` with `log_timezone`). A stamp is that wall-clock time packed as the
//! decimal number `YYYYMMDDhhmmss`: ordering is chronological, no calendar arithmetic is needed
//! per line, and it converts back to the exact text. Bounds given as durations (`1h` = "one hour
//! ago") are computed from the local clock, the same clock Exim writes.

use chrono::{Duration, Local, NaiveDate, NaiveDateTime, TimeZone};

/// A wall-clock time as `YYYYMMDDhhmmss`.
pub type Stamp = u64;

#[inline]
fn d2(b: &[u8], i: usize) -> Option<u64> {
    let (x, y) = (b[i].wrapping_sub(b'0'), b[i + 1].wrapping_sub(b'0'));
    (x < 10 && y < 10).then(|| u64::from(x) * 10 + u64::from(y))
}

/// If the line starts with a timestamp's shape (`YYYY-MM-DD HH:MM:SS`, optional `.mmm` and
/// ` +HHMM`, then a space), the offset of the text after it. Only the separators are checked:
/// [`stamp_value`] reads the digits, for the lines that need them.
#[inline]
pub fn stamp_shape(b: &[u8]) -> Option<usize> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    // ` +HHMM` / ` -HHMM` (log_timezone).
    if b.len() >= i + 6
        && b[i] == b' '
        && (b[i + 1] == b'+' || b[i + 1] == b'-')
        && b[i + 2..i + 6].iter().all(u8::is_ascii_digit)
    {
        i += 6;
    }
    if b.get(i) != Some(&b' ') {
        return None;
    }
    Some(i + 1)
}

/// The stamp of a line that has a timestamp's shape; `None` if the digits are not a time.
#[inline]
pub fn stamp_value(b: &[u8]) -> Option<Stamp> {
    if b.len() < 19 {
        return None;
    }
    let year = d2(b, 0)? * 100 + d2(b, 2)?;
    let (mo, dd, hh, mi, ss) = (d2(b, 5)?, d2(b, 8)?, d2(b, 11)?, d2(b, 14)?, d2(b, 17)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&dd) || hh > 23 || mi > 59 || ss > 60 {
        return None;
    }
    Some(((((year * 100 + mo) * 100 + dd) * 100 + hh) * 100 + mi) * 100 + ss)
}

/// Parses the timestamp at the start of a log line. Returns the stamp and the offset of the
/// text that follows it (after `.mmm`, ` +HHMM` and the separating space).
#[inline]
pub fn parse_line_stamp(b: &[u8]) -> Option<(Stamp, usize)> {
    let i = stamp_shape(b)?;
    Some((stamp_value(b)?, i))
}

/// The stamp as Exim writes it: `YYYY-MM-DD HH:MM:SS`.
pub fn format_stamp(s: Stamp) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        s / 10_000_000_000,
        s / 100_000_000 % 100,
        s / 1_000_000 % 100,
        s / 10_000 % 100,
        s / 100 % 100,
        s % 100
    )
}

fn naive_to_stamp(t: &NaiveDateTime) -> Stamp {
    t.format("%Y%m%d%H%M%S").to_string().parse().unwrap_or(0)
}

fn stamp_to_naive(s: Stamp) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(&s.to_string(), "%Y%m%d%H%M%S").ok()
}

/// Seconds since the Unix epoch of a local-time stamp (for Prometheus); `None` if it does not
/// exist in the local zone.
pub fn stamp_to_epoch(s: Stamp) -> Option<i64> {
    let naive = stamp_to_naive(s)?;
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp())
}

/// The local wall-clock time now, as a stamp.
pub fn now_stamp() -> Stamp {
    naive_to_stamp(&Local::now().naive_local())
}

/// Parses a `--since`/`--until` value: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM`, `YYYY-MM-DD HH:MM:SS`
/// (a `T` may replace the space), or a duration ago: a number and a unit `s`, `m`, `h`, `d`,
/// `w`, combinable (`1h30m`). `now` is the local time the durations count back from.
pub fn parse_bound(text: &str, now: NaiveDateTime) -> Result<Stamp, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(
            "empty time: give YYYY-MM-DD[ HH:MM[:SS]] or a duration like 1h, 30m, 7d".into(),
        );
    }
    if t.as_bytes()[0].is_ascii_digit() && t.len() >= 10 && t.as_bytes()[4] == b'-' {
        let t2 = t.replacen('T', " ", 1);
        for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
            if let Ok(dt) = NaiveDateTime::parse_from_str(&t2, fmt) {
                return Ok(naive_to_stamp(&dt));
            }
        }
        if let Ok(d) = NaiveDate::parse_from_str(&t2, "%Y-%m-%d") {
            return Ok(naive_to_stamp(&d.and_hms_opt(0, 0, 0).unwrap_or_default()));
        }
        return Err(format!(
            "bad time {text:?}: give YYYY-MM-DD, YYYY-MM-DD HH:MM or YYYY-MM-DD HH:MM:SS"
        ));
    }
    let mut total = 0i64;
    let mut num: Option<i64> = None;
    for c in t.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(
                num.unwrap_or(0)
                    .saturating_mul(10)
                    .saturating_add(i64::from(d)),
            );
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => {
                return Err(format!(
                    "bad duration {text:?}: use a number and s, m, h, d or w, like 1h, 30m, 7d"
                ))
            }
        };
        let Some(n) = num.take() else {
            return Err(format!(
                "bad duration {text:?}: a unit needs a number before it, like 1h"
            ));
        };
        total = total.saturating_add(n.saturating_mul(unit));
    }
    if num.is_some() {
        return Err(format!(
            "bad duration {text:?}: the number needs a unit (s, m, h, d, w), like {t}h"
        ));
    }
    let then = now
        .checked_sub_signed(Duration::seconds(total))
        .ok_or_else(|| format!("duration {text:?} is too long"))?;
    Ok(naive_to_stamp(&then))
}

/// The local wall-clock stamp of a file time (its mtime) plus `later` seconds.
pub fn system_time_stamp(t: std::time::SystemTime, later: i64) -> Stamp {
    let local: chrono::DateTime<Local> = t.into();
    let naive = local.naive_local() + Duration::seconds(later);
    naive_to_stamp(&naive)
}

/// The local time now (the base of durations).
pub fn local_now() -> NaiveDateTime {
    Local::now().naive_local()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_stamps() {
        let (s, at) = parse_line_stamp(b"2026-12-03 13:03:24 [23354] x").expect("stamp");
        assert_eq!((s, at), (20261203130324, 20));
        let (s, at) = parse_line_stamp(b"2026-12-03 13:03:24.123 +0100 1xZ").expect("ms+tz");
        assert_eq!((s, at), (20261203130324, 30));
        assert!(parse_line_stamp(b"2026-12-03 13:03").is_none());
        assert!(parse_line_stamp(b"2026-13-03 13:03:24 x").is_none());
        assert!(parse_line_stamp(b"garbage garbage garbage").is_none());
        assert_eq!(format_stamp(20261203130324), "2026-12-03 13:03:24");
    }

    #[test]
    fn bounds() {
        let now =
            NaiveDateTime::parse_from_str("2026-12-03 13:00:00", "%Y-%m-%d %H:%M:%S").expect("now");
        assert_eq!(parse_bound("1h", now), Ok(20261203120000));
        assert_eq!(parse_bound("1h30m", now), Ok(20261203113000));
        assert_eq!(parse_bound("7d", now), Ok(20261126130000));
        assert_eq!(parse_bound("2026-12-01", now), Ok(20261201000000));
        assert_eq!(parse_bound("2026-12-01 10:05", now), Ok(20261201100500));
        assert_eq!(parse_bound("2026-12-01T10:05:07", now), Ok(20261201100507));
        assert!(parse_bound("10", now)
            .expect_err("no unit")
            .contains("needs a unit"));
        assert!(parse_bound("1y", now).is_err());
        assert!(parse_bound("2026-02-30", now).is_err());
    }
}
