//! The browser client and admin page over HTTP: pre-compressed bodies chosen
//! by `Accept-Encoding`, `304 Not Modified` for a matching `If-None-Match`,
//! pages revalidated on every load (`no-cache`), hashed assets cached for a
//! year (`immutable`).

use actix_web::http::header::{self, HeaderMap};
use actix_web::{web, HttpRequest, HttpResponse, HttpResponseBuilder};

use crate::assets::{Assets, Coding, Lookup, Representations};
use crate::error::ApiError;

const REVALIDATE: &str = "no-cache";
const FOREVER: &str = "public, max-age=31536000, immutable";

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The representation for this request, or 304 when the client has it.
fn respond(
    req: &HttpRequest,
    content: &Representations,
    cache_control: &str,
    extra: impl FnOnce(&mut HttpResponseBuilder),
) -> HttpResponse {
    let coding = Coding::negotiate(header_str(req.headers(), header::ACCEPT_ENCODING));
    let fresh = header_str(req.headers(), header::IF_NONE_MATCH).is_some_and(|inm| content.matches(inm, coding));
    let mut res = if fresh { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    res.insert_header((header::ETAG, content.etag(coding)))
        .insert_header((header::CACHE_CONTROL, cache_control))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header(("X-Content-Type-Options", "nosniff"));
    extra(&mut res);
    if fresh {
        return res.finish();
    }
    if let Some(c) = coding.header() {
        res.insert_header((header::CONTENT_ENCODING, c));
    }
    res.content_type(content.content_type).body(content.body(coding).clone())
}

fn page(req: &HttpRequest, assets: &Assets, content: &Representations) -> HttpResponse {
    respond(req, content, REVALIDATE, |res| {
        res.insert_header(("Content-Security-Policy", assets.csp.as_str()))
            .insert_header(("X-Frame-Options", "DENY"))
            .insert_header(("Referrer-Policy", "no-referrer"));
    })
}

pub async fn index(req: HttpRequest, assets: web::Data<Assets>) -> HttpResponse {
    page(&req, &assets, &assets.index)
}

pub async fn admin(req: HttpRequest, assets: web::Data<Assets>) -> HttpResponse {
    page(&req, &assets, &assets.admin)
}

pub async fn asset(req: HttpRequest, path: web::Path<String>, assets: web::Data<Assets>) -> Result<HttpResponse, ApiError> {
    let (asset, cache_control) = match assets.lookup(path.as_str()) {
        Some(Lookup::Immutable(a)) => (a, FOREVER),
        Some(Lookup::Current(a)) => (a, REVALIDATE),
        None => return Err(ApiError::NotFound("no such asset".into())),
    };
    let cross_origin = assets.cross_origin;
    Ok(respond(&req, &asset.content, cache_control, |res| {
        if cross_origin {
            // Pages on the server's origin load these from the CDN with
            // `integrity`, which needs CORS.
            res.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"));
        }
    }))
}
