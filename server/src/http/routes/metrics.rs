//! `GET /metrics`: Watchpost's own request figures and everything it watches ([`crate::exports`]), in the
//! format the scraper asks for: OpenMetrics when its `Accept` prefers `application/openmetrics-text` (as
//! Prometheus does), else the classic Prometheus text format with HELP and TYPE for every family, which
//! every version of Prometheus and `promtool check metrics` read.

use crate::exports::{self, Known};
use crate::history::History;
use crate::hub::Hub;
use crate::sources::host::CollectorStatus;
use crate::sources::http_self::HttpMetrics;
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{prometheus_text, text};
use shared::{Access, Event};
use std::sync::Arc;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The two text formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    OpenMetrics,
    Classic,
}

/// The format `accept` prefers. Each format takes the quality of the most specific media range naming it
/// (`application/openmetrics-text`, then `application/*`, then `*/*`; `text/plain`, `text/*`, `*/*`); the
/// higher wins, and on a tie OpenMetrics only if the client named it. No header, or one naming neither, is
/// the classic format: what a client that never heard of OpenMetrics expects.
fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Classic;
    };
    // (specificity, quality) of the best match so far, per format.
    let mut open: Option<(u8, f32)> = None;
    let mut classic: Option<(u8, f32)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let offer = |slot: &mut Option<(u8, f32)>, specificity: u8| {
            if slot.is_none_or(|(s, _)| specificity > s) {
                *slot = Some((specificity, q));
            }
        };
        match media.as_str() {
            "application/openmetrics-text" => offer(&mut open, 2),
            "application/*" => offer(&mut open, 1),
            "text/plain" => offer(&mut classic, 2),
            "text/*" => offer(&mut classic, 1),
            "*/*" => {
                offer(&mut open, 0);
                offer(&mut classic, 0);
            }
            _ => {}
        }
    }
    match (open, classic) {
        (Some((2, o)), Some((_, c))) if o > 0.0 && o >= c => Format::OpenMetrics,
        (Some((_, o)), Some((_, c))) if o > c => Format::OpenMetrics,
        (Some((_, o)), None) if o > 0.0 => Format::OpenMetrics,
        _ => Format::Classic,
    }
}

pub async fn get(
    State(metrics): State<Arc<HttpMetrics>>,
    State(hub): State<Arc<Hub>>,
    State(collector): State<Arc<CollectorStatus>>,
    State(history): State<History>,
    access: Option<Extension<Access>>,
    headers: HeaderMap,
) -> Response {
    let format = negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    // The store's status as the recorder last saw it: in memory, no database work per scrape (`health()`
    // would also measure the file).
    let storage = history.status();
    let Event::Snapshot(snapshot) = hub.snapshot().event else {
        return fault("the hub's snapshot is not a snapshot".into());
    };
    // A scraper sees what its token or user may: only the environments it may see.
    let snapshot = match access {
        Some(Extension(access)) => snapshot.for_access(&access, hub.environment()),
        None => snapshot,
    };
    let known = exports::registry(&Known {
        snapshot: &snapshot,
        stream_clients: hub.stream_count(),
        storage: &storage,
        rss_bytes: collector.rss_bytes(),
    });
    let mut body = String::new();
    let encoded = match format {
        Format::OpenMetrics => text::encode_registry(&mut body, metrics.registry())
            .and_then(|()| text::encode_registry(&mut body, &known))
            .and_then(|()| text::encode_eof(&mut body)),
        Format::Classic => prometheus_text::encode(&mut body, metrics.registry())
            .and_then(|()| prometheus_text::encode(&mut body, &known)),
    };
    if let Err(e) = encoded {
        return fault(e.to_string());
    }
    let content_type = match format {
        Format::OpenMetrics => OPENMETRICS,
        Format::Classic => CLASSIC,
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::VARY, "Accept"),
        ],
        body,
    )
        .into_response()
}

/// A fault of the server, never of the request: logged, and answered 500.
fn fault(reason: String) -> Response {
    tracing::error!("cannot encode /metrics: {reason}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("cannot encode metrics: {reason}"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_follows_what_the_scraper_prefers() {
        // Prometheus 2.x's scrape header.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(Some(prometheus)), Format::OpenMetrics);
        // Prometheus 3 with the classic format first in its scrape protocols.
        let classic_first =
            "text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4";
        assert_eq!(negotiate(Some(classic_first)), Format::Classic);
        // curl, a browser, or nothing at all.
        assert_eq!(negotiate(Some("*/*")), Format::Classic);
        assert_eq!(negotiate(None), Format::Classic);
        assert_eq!(
            negotiate(Some("text/html,application/xhtml+xml,*/*;q=0.8")),
            Format::Classic
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text")),
            Format::OpenMetrics
        );
        // Refused outright is never chosen.
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0, */*")),
            Format::Classic
        );
        assert_eq!(negotiate(Some("garbage;;q=x,,")), Format::Classic);
    }
}
