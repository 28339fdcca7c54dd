//! `GET /v1/openapi.json`, `GET /docs` and `GET /docs/{asset}`: the OpenAPI document and the
//! Swagger UI page that renders it, all public.
//!
//! The page's files are embedded in the binary (vendored from the npm package `swagger-ui-dist`,
//! see `assets/swagger-ui/VERSION` and `scripts/refresh-swagger-ui`), so it works offline and under
//! a Content-Security-Policy that allows nothing but this origin. They weigh about 2 MB, so only
//! the binaries that serve these routes may link them: the api-docs function and plan-local.
//!
//! A cargo feature alone cannot keep them out of the other functions: `sam build` (like any build
//! of the whole workspace) resolves features once for every member, so plan-http's `api-docs`
//! feature, on for api-docs and plan-local, is on for every function. So the routes are reached
//! only through [`crate::Api::docs`], which no other function's `main` names: nothing those
//! functions can reach refers to the files, and the linker drops them. The feature still leaves
//! the files out of builds that select only other crates.

use axum::response::IntoResponse;
#[cfg(feature = "api-docs")]
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::problem::Problem;
use crate::routes::Endpoint;

/// The route of one documentation endpoint: the document, the page or its files, or a 404 in a
/// build without the `api-docs` feature.
pub fn route(endpoint: Endpoint, filter: MethodFilter) -> MethodRouter {
    #[cfg(feature = "api-docs")]
    return enabled::route(endpoint, filter);
    #[cfg(not(feature = "api-docs"))]
    {
        let _ = endpoint;
        absent(filter)
    }
}

/// What a documentation route answers where the documentation is not served: 404, like a route
/// that does not exist (no function but api-docs ever receives these paths).
pub fn absent(filter: MethodFilter) -> MethodRouter {
    on(filter, || async { Problem::route_not_found().into_response() })
}

/// The policy of the page: scripts, styles, fetches and fonts from this origin only; images also
/// as `data:` URIs (Swagger UI's icons are SVGs inlined in its CSS).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

#[cfg(feature = "api-docs")]
mod enabled {
    use std::sync::LazyLock;

    use axum::extract::Path;
    use axum::http::{HeaderName, HeaderValue, StatusCode, header};
    use plan::ETag;

    use super::*;
    use crate::extract::Conditions;
    use crate::routes::{insert_etag, not_modified};

    /// The route of each documentation endpoint.
    pub fn route(endpoint: Endpoint, filter: MethodFilter) -> MethodRouter {
        match endpoint {
            Endpoint::GetOpenApi => on(filter, openapi_document),
            Endpoint::DocsPage => on(filter, page),
            Endpoint::DocsAsset => on(filter, asset),
            _ => absent(filter),
        }
    }

    /// A file served by the page: its name under /docs/, media type and bytes.
    struct Asset {
        name: &'static str,
        content_type: &'static str,
        bytes: &'static [u8],
    }

    const ASSETS: &[Asset] = &[
        Asset {
            name: "swagger-ui-bundle.js",
            content_type: "text/javascript; charset=utf-8",
            bytes: include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js"),
        },
        Asset {
            name: "swagger-ui.css",
            content_type: "text/css; charset=utf-8",
            bytes: include_bytes!("../assets/swagger-ui/swagger-ui.css"),
        },
        Asset { name: "favicon-32x32.png", content_type: "image/png", bytes: include_bytes!("../assets/swagger-ui/favicon-32x32.png") },
        Asset { name: "LICENSE", content_type: "text/plain; charset=utf-8", bytes: include_bytes!("../assets/swagger-ui/LICENSE") },
        Asset { name: "docs.js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("../assets/docs/docs.js") },
        Asset { name: "docs.css", content_type: "text/css; charset=utf-8", bytes: include_bytes!("../assets/docs/docs.css") },
    ];

    const PAGE: &str = include_str!("../assets/docs/index.html");

    static DOCUMENT_BYTES: LazyLock<Vec<u8>> = LazyLock::new(|| serde_json::to_vec(&*crate::openapi::DOCUMENT).unwrap_or_default());
    static DOCUMENT_ETAG: LazyLock<ETag> = LazyLock::new(|| ETag::of(&DOCUMENT_BYTES));
    static ASSET_ETAGS: LazyLock<Vec<ETag>> = LazyLock::new(|| ASSETS.iter().map(|a| ETag::of(a.bytes)).collect());

    /// The document, with an ETag and 304 like the schema route.
    pub async fn openapi_document(Conditions(conditions): Conditions) -> Response {
        if conditions.for_read(&DOCUMENT_ETAG) == plan::etag::ReadOutcome::NotModified {
            return not_modified(&DOCUMENT_ETAG);
        }
        let headers = [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "public, max-age=300")];
        let mut response = (headers, DOCUMENT_BYTES.as_slice()).into_response();
        insert_etag(&mut response, &DOCUMENT_ETAG);
        response
    }

    pub async fn page() -> Response {
        let mut response =
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], PAGE).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
        response
    }

    pub async fn asset(Path(name): Path<String>) -> Response {
        let Some((asset, etag)) = ASSETS.iter().zip(ASSET_ETAGS.iter()).find(|(a, _)| a.name == name) else {
            return Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", "the docs page has no such file").into_response();
        };
        // Cached for a day, and revalidated by ETag: the files change only with a new build.
        let headers = [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ];
        let mut response = (headers, asset.bytes).into_response();
        insert_etag(&mut response, etag);
        response
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_page_loads_only_files_it_serves() {
            for reference in PAGE.split('"').filter(|s| s.starts_with("docs/")) {
                let name = reference.trim_start_matches("docs/");
                assert!(ASSETS.iter().any(|a| a.name == name), "index.html loads {reference}, which /docs/{{asset}} does not serve");
            }
            assert!(!PAGE.contains("<script>") && !PAGE.contains("style="), "no inline script or style under the strict CSP");
        }
    }
}
