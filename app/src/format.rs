//! Human-readable numbers: bytes, rates, durations, ages.

/// Binary units, as `free -h` and most dashboards show memory and disks.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

pub fn rate(bytes_per_s: f64) -> String {
    format!("{}/s", bytes(bytes_per_s.max(0.0).round() as u64))
}

pub fn used_of(used: u64, total: u64) -> String {
    format!("{} / {}", bytes(used), bytes(total))
}

/// Uptime as "3d 4h 5m", precise to the minute.
pub fn uptime(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

/// Milliseconds with the precision that matters at their size: `0.04`, `2.6`, `480`.
pub fn millis(ms: f64) -> String {
    match ms {
        m if m < 1.0 => format!("{m:.2}"),
        m if m < 100.0 => format!("{m:.1}"),
        m => format!("{m:.0}"),
    }
}

/// A step between chart points: "4s", "2m", "3h".
pub fn span(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        _ if s < 120 => format!("{s}s"),
        _ if s < 7200 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// A sampling interval as a person writes it: "500ms", "1.5s", "5s", "1m", "1h".
pub fn interval(ms: u64) -> String {
    match (ms, ms / 1000) {
        (ms, _) if ms < 1000 => format!("{ms}ms"),
        (ms, s) if ms % 1000 != 0 => format!("{s}.{}s", ms % 1000 / 100),
        (_, s) if s % 3600 == 0 => format!("{}h", s / 3600),
        (_, s) if s % 60 == 0 => format!("{}m", s / 60),
        (_, s) => format!("{s}s"),
    }
}

/// Calendar date and time of day (UTC) of a Unix-ms instant.
fn utc_parts(t_ms: i64) -> (i64, u32, u32, i64, i64, i64, i64) {
    let secs = t_ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        t_ms.rem_euclid(1000),
    )
}

/// `2026-11-26T03:51:11.042Z`, for `datetime` attributes.
pub fn iso_utc(t_ms: i64) -> String {
    let (y, mo, d, h, mi, s, ms) = utc_parts(t_ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// `11-26 03:51:11`: what a log line shows. UTC, so the server-rendered page and the browser agree.
pub fn clock_utc(t_ms: i64) -> String {
    let (_, mo, d, h, mi, s, _) = utc_parts(t_ms);
    format!("{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// The age of the last event, as the connection indicator shows it.
pub fn age(ms: f64) -> String {
    let s = (ms.max(0.0) / 1000.0).floor() as u64;
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        _ => format!("{}h ago", s / 3600),
    }
}

/// Percent-encodes a query value.
pub(crate) fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) fn query_string(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_read_like_the_tools_people_know() {
        assert_eq!(
            [500, 1_500, 5_000, 90_000, 60_000, 300_000, 3_600_000].map(interval),
            ["500ms", "1.5s", "5s", "90s", "1m", "5m", "1h"]
        );
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(8 << 30), "8.0 GiB");
        assert_eq!(rate(2048.4), "2.0 KiB/s");
        assert_eq!(uptime(59), "0m");
        assert_eq!(uptime(3 * 86_400 + 4 * 3600 + 5 * 60), "3d 4h 5m");
        assert_eq!(age(999.0), "0s ago");
        assert_eq!(age(61_000.0), "1m ago");
        assert_eq!(span(4_000), "4s");
        assert_eq!(millis(0.042), "0.04");
        assert_eq!(millis(2.64), "2.6");
        assert_eq!(millis(480.4), "480");
        assert_eq!(span(660_000), "11m");
        assert_eq!(span(10_800_000), "3h");
        assert_eq!(iso_utc(1_795_658_400_042), "2026-11-26T02:00:00.042Z");
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(clock_utc(1_795_658_400_042), "11-26 02:00:00");
    }
}
