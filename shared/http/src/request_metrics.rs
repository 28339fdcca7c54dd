//! `http_requests_total` and `http_request_duration_seconds`, recorded around every router (the
//! Lambda functions' and the local server's alike).
//!
//! Labels come from closed sets so that no request can mint a series: the route is the matched
//! route template (`/v1/plan/{id}`, never the id), or `unmatched`; the method one of the standard
//! ones or `other`; the status a three-digit code from a static table.

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use plan::metrics::{HTTP_REQUEST_DURATION, HTTP_REQUESTS};

use crate::{Endpoint, JWKS_PATH};

/// The route label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

pub async fn track_requests(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let route = request.extensions().get::<MatchedPath>().map_or(UNMATCHED, |matched| route_label(matched.as_str()));
    let method = method_label(request.method());
    let response = next.run(request).await;
    metrics::histogram!(HTTP_REQUEST_DURATION.name, "route" => route, "method" => method).record(started.elapsed().as_secs_f64());
    let status = status_label(response.status().as_u16());
    metrics::counter!(HTTP_REQUESTS.name, "route" => route, "method" => method, "status" => status).increment(1);
    response
}

/// The static route template equal to a matched path: one of [`Endpoint::path`], the JWKS path,
/// or `unmatched` for anything else (a route added without a template here reads as unmatched,
/// never as free text).
pub fn route_label(matched: &str) -> &'static str {
    Endpoint::ALL.iter().map(|endpoint| endpoint.path()).chain([JWKS_PATH]).find(|path| *path == matched).unwrap_or(UNMATCHED)
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// "100" to "599" without allocating: the label of every status code an HTTP response can have.
#[allow(clippy::indexing_slicing, reason = "a const loop over 0..500, the table's length")]
static STATUS_CODES: [[u8; 3]; 500] = {
    let mut table = [[0u8; 3]; 500];
    let mut i = 0;
    while i < 500 {
        let code = i + 100;
        table[i] = [b'0' + (code / 100) as u8, b'0' + (code / 10 % 10) as u8, b'0' + (code % 10) as u8];
        i += 1;
    }
    table
};

/// The status label: the code's three digits, or `other` outside 100..=599.
pub fn status_label(code: u16) -> &'static str {
    usize::from(code)
        .checked_sub(100)
        .and_then(|i| STATUS_CODES.get(i))
        .and_then(|digits| std::str::from_utf8(digits).ok())
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_closed_sets() {
        assert_eq!(status_label(200), "200");
        assert_eq!(status_label(503), "503");
        assert_eq!(status_label(100), "100");
        assert_eq!(status_label(599), "599");
        assert_eq!(status_label(99), "other");
        assert_eq!(status_label(600), "other");
        assert_eq!(route_label("/v1/plan/{id}"), "/v1/plan/{id}");
        assert_eq!(route_label("/v1/plan/12xvxc345ssdsds-508"), UNMATCHED);
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
