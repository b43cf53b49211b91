//! The headers every response carries: no MIME sniffing, no framing, no referrer beyond this site, a
//! Content-Security-Policy (pages set their own, with the nonce of their inline scripts; anything else gets
//! one that allows nothing), and caching that fits what it is. A page or an answer of the API is what one
//! signed-in user may see, so it is never stored by a browser or a proxy; static files are revalidated.

use crate::http::middleware::is_asset;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// For responses that are not pages: nothing may load or run from them, and nothing may frame them.
const LOCKED_DOWN: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

pub async fn security_headers(req: Request, next: Next) -> Response {
    // The static files' names carry no content hash yet, so a browser keeps them but asks whether they
    // changed (`Last-Modified`) before each use.
    let is_static = is_asset(req.uri().path());
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(LOCKED_DOWN));
    let cache = if is_static { "no-cache" } else { "no-store" };
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static(cache));
    response
}
