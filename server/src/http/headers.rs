//! The headers every response carries: no MIME sniffing, no framing, no referrer beyond this site, a
//! Content-Security-Policy (pages set their own, with the nonce of their inline scripts; anything else gets
//! one that allows nothing), and caching that fits what it is. A page or an answer of the API is what one
//! signed-in user may see, so it is never stored by a browser or a proxy; a static file whose name carries a
//! hash of its content is kept for a year and never asked for again (a second visit downloads none of it);
//! any other static file is revalidated.

use crate::http::middleware::{is_asset, is_content_hashed};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

/// For responses that are not pages: nothing may load or run from them, and nothing may frame them.
const LOCKED_DOWN: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// A year, the longest a cache is asked to keep anything, and no revalidation meanwhile.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

pub async fn security_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let (is_static, is_hashed) = (is_asset(path), is_content_hashed(path));
    let mut response = next.run(req).await;
    // Only a file that was found may be kept for good: a 404 for a hashed name is not final.
    let found = response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
    let cache = if is_hashed && found {
        IMMUTABLE
    } else if is_static {
        "no-cache"
    } else {
        "no-store"
    };
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
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static(cache));
    // A static file may be sent as its brotli or gzip copy (ServeDir's precompressed files, which set no
    // `Vary`): a shared cache must not hand one client's encoding to another.
    if is_static && !headers.contains_key(header::VARY) {
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}
