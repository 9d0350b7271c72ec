//! The page and its assets over real HTTP: encodings, validators, cache
//! lifetimes, content hashes and the CDN base URL.

use std::io::Read;

use base64::Engine;
use sha2::{Digest, Sha256, Sha384};

use crate::support::{spawn_app, spawn_app_with, TestApp};

struct Fetched {
    status: u16,
    headers: awc::http::header::HeaderMap,
    body: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The body decoded from its Content-Encoding.
    fn decoded(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self.header("content-encoding") {
            "br" => brotli::Decompressor::new(&self.body[..], 4096).read_to_end(&mut out).expect("brotli"),
            "gzip" => flate2::read::GzDecoder::new(&self.body[..]).read_to_end(&mut out).expect("gzip"),
            "" => return self.body.clone(),
            other => panic!("unexpected encoding {other}"),
        };
        out
    }
}

async fn fetch(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Fetched {
    let mut req = app.client.get(app.url(path));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut res = req.send().await.expect("GET");
    let body = res.body().limit(1 << 20).await.expect("body").to_vec();
    Fetched { status: res.status().as_u16(), headers: res.headers().clone(), body }
}

/// `/static/…` URLs (with anything before them) referenced by a page.
fn asset_urls(html: &str) -> Vec<String> {
    html.split('"').filter(|s| s.contains("/static/")).map(str::to_string).collect()
}

#[actix_web::test]
async fn pages_are_compressed_revalidated_and_assets_immutable() {
    let app = spawn_app().await;
    let br = fetch(&app, "/", &[("Accept-Encoding", "gzip, deflate, br")]).await;
    assert_eq!(br.status, 200);
    assert_eq!(br.header("content-encoding"), "br");
    assert_eq!(br.header("cache-control"), "no-cache");
    assert_eq!(br.header("vary"), "Accept-Encoding");
    let etag = br.header("etag").to_string();
    assert!(etag.starts_with('"') && etag.ends_with("-br\""), "{etag}");
    let html = String::from_utf8(br.decoded()).expect("utf8");

    // The same page in every coding; a strong validator per coding.
    let gz = fetch(&app, "/", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(gz.header("content-encoding"), "gzip");
    assert_eq!(gz.decoded(), html.as_bytes());
    assert_ne!(gz.header("etag"), etag);
    let plain = fetch(&app, "/", &[]).await;
    assert_eq!(plain.header("content-encoding"), "");
    assert_eq!(plain.body, html.as_bytes());
    assert!(br.body.len() * 2 < plain.body.len(), "brotli {} vs {}", br.body.len(), plain.body.len());

    // A warm load revalidates the page: 304, no body.
    let again = fetch(&app, "/", &[("Accept-Encoding", "br"), ("If-None-Match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), etag);
    let stale = fetch(&app, "/", &[("Accept-Encoding", "br"), ("If-None-Match", "\"0000\"")]).await;
    assert_eq!(stale.status, 200);
    let mut head = app.client.head(app.url("/")).insert_header(("Accept-Encoding", "br")).send().await.expect("HEAD");
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(head.headers().get("etag").and_then(|v| v.to_str().ok()), Some(etag.as_str()));
    assert!(head.body().await.expect("body").is_empty());

    // Assets: content-hashed names, cached for a year, the bytes the hash names.
    let mut cold_bytes = br.body.len();
    // The stylesheet, the entry module and the three modules it imports (preloaded).
    let urls = asset_urls(&html);
    assert_eq!(urls.len(), 5, "{html}");
    for url in &urls {
        let name = url.strip_prefix("/static/").expect("same-origin asset");
        let (stem, rest) = name.split_once('.').expect("hashed name");
        let (hash, ext) = rest.split_once('.').expect("hashed name");
        assert_eq!(hash.len(), 12, "{name}");
        let asset = fetch(&app, url, &[("Accept-Encoding", "br")]).await;
        assert_eq!(asset.status, 200, "{url}");
        assert_eq!(asset.header("cache-control"), "public, max-age=31536000, immutable");
        assert_eq!(asset.header("content-encoding"), "br");
        let body = asset.decoded();
        let digest: String = Sha256::digest(&body)[..6].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(digest, hash, "{url} does not hash to its name");
        cold_bytes += asset.body.len();
        // The plain name and another release's hash: current bytes, revalidated.
        for other in [format!("/static/{stem}.{ext}"), format!("/static/{stem}.000000000000.{ext}")] {
            let current = fetch(&app, &other, &[]).await;
            assert_eq!(current.status, 200, "{other}");
            assert_eq!(current.header("cache-control"), "no-cache", "{other}");
            assert_eq!(current.body, body, "{other}");
        }
        let revalidated = fetch(&app, url, &[("Accept-Encoding", "br"), ("If-None-Match", asset.header("etag"))]).await;
        assert_eq!(revalidated.status, 304);
    }
    assert!(cold_bytes < 50 * 1024, "a cold load is {cold_bytes} bytes");

    // The admin page too.
    let admin = String::from_utf8(fetch(&app, "/admin", &[]).await.body).expect("utf8");
    let admin_urls = asset_urls(&admin);
    assert_eq!(admin_urls.len(), 2, "{admin}");
    assert!(admin_urls.iter().all(|u| u.starts_with("/static/admin.")), "{admin_urls:?}");

    let missing = fetch(&app, "/static/nope.js", &[]).await;
    assert_eq!(missing.status, 404);
    let error: serde_json::Value = serde_json::from_slice(&missing.body).expect("contract error shape");
    assert_eq!(error["error"]["code"], "not_found");
    let traversal = fetch(&app, "/static/..%2F..%2FCargo.toml", &[]).await;
    assert_eq!(traversal.status, 404);
}

#[actix_web::test]
async fn a_cdn_base_url_serves_assets_with_integrity() {
    let app = spawn_app_with(&[("ASSET_BASE_URL", "https://cdn.example.com/sb/")]).await;
    let page = fetch(&app, "/", &[]).await;
    let html = String::from_utf8(page.body.clone()).expect("utf8");
    let csp = page.header("content-security-policy");
    assert!(csp.contains("script-src 'self' https://cdn.example.com;"), "{csp}");
    assert!(csp.contains("style-src 'self' https://cdn.example.com;"), "{csp}");
    let urls = asset_urls(&html);
    assert_eq!(urls.len(), 5, "{html}");
    for url in urls {
        let path = url.strip_prefix("https://cdn.example.com/sb").expect("asset on the CDN");
        // The CDN pulls the same path from any instance.
        let asset = fetch(&app, path, &[]).await;
        assert_eq!(asset.status, 200, "{path}");
        assert_eq!(asset.header("access-control-allow-origin"), "*");
        let integrity = format!("sha384-{}", base64::engine::general_purpose::STANDARD.encode(Sha384::digest(&asset.body)));
        let tag = format!("\"{url}\" integrity=\"{integrity}\" crossorigin=\"anonymous\"");
        assert!(html.contains(&tag), "missing {tag} in\n{html}");
    }
}
