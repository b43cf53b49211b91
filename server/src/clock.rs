//! Wall-clock time as the rest of the server reads it: Unix milliseconds and microseconds, and RFC 3339 for
//! what people read. One place, so that every layer (down to the hub's sequence seed) agrees on "now".

pub use collect::clock::{now_micros, now_millis};

/// Unix ms as RFC 3339 (`2026-11-26T10:31:02.125Z`), for what people read; empty for a time out of range.
pub fn rfc3339(t_ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t_ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}
