//! The browser client's files, prepared once at start-up for the fastest
//! possible delivery: every asset gets a content-hashed URL (so it can be
//! cached forever, by browsers and CDNs), is compressed ahead of time with
//! brotli and gzip at their highest levels (no per-request compression CPU),
//! and the HTML pages are rewritten to point at the hashed URLs, optionally
//! on `ASSET_BASE_URL`.

use std::collections::HashMap;
use std::io::Write;

use actix_web::web::Bytes;
use base64::Engine;
use sha2::{Digest, Sha256, Sha384};

/// Source files, embedded so a deployment is one binary. A module comes
/// after the modules it imports: its `import … from "./x.js"` are pointed at
/// their hashed names before its own hash is taken.
const SOURCES: &[(&str, &str, &str)] = &[
    ("switchboard.js", "text/javascript; charset=utf-8", include_str!("../static/switchboard.js")),
    ("chat-state.js", "text/javascript; charset=utf-8", include_str!("../static/chat-state.js")),
    ("chat-views.js", "text/javascript; charset=utf-8", include_str!("../static/chat-views.js")),
    ("chat.js", "text/javascript; charset=utf-8", include_str!("../static/chat.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../static/app.css")),
    ("admin.js", "text/javascript; charset=utf-8", include_str!("../static/admin.js")),
    ("admin.css", "text/css; charset=utf-8", include_str!("../static/admin.css")),
];
const INDEX_HTML: &str = include_str!("../static/index.html");
const ADMIN_HTML: &str = include_str!("../static/admin.html");

/// A content coding a client may accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
    Identity,
}

impl Coding {
    pub fn header(self) -> Option<&'static str> {
        match self {
            Coding::Brotli => Some("br"),
            Coding::Gzip => Some("gzip"),
            Coding::Identity => None,
        }
    }

    /// The best coding an `Accept-Encoding` header allows: brotli, then gzip
    /// (each smaller than the next), else the plain bytes.
    pub fn negotiate(accept_encoding: Option<&str>) -> Coding {
        let Some(header) = accept_encoding else {
            return Coding::Identity;
        };
        let mut best = Coding::Identity;
        for part in header.split(',') {
            let mut fields = part.split(';');
            let name = fields.next().unwrap_or("").trim().to_ascii_lowercase();
            let q =
                fields.find_map(|f| f.trim().strip_prefix("q=").map(|v| v.trim().parse::<f32>().unwrap_or(0.0))).unwrap_or(1.0);
            if q <= 0.0 {
                continue;
            }
            match name.as_str() {
                "br" => return Coding::Brotli,
                "gzip" | "x-gzip" | "*" => best = Coding::Gzip,
                _ => {}
            }
        }
        best
    }
}

/// One resource in every coding, with a strong ETag per coding.
pub struct Representations {
    pub content_type: &'static str,
    identity: Bytes,
    gzip: Bytes,
    brotli: Bytes,
    /// Hex SHA-256 prefix of the plain bytes.
    pub hash: String,
}

impl Representations {
    fn new(content_type: &'static str, bytes: Vec<u8>) -> Self {
        let hash = hex(&Sha256::digest(&bytes)[..6]);
        Representations { content_type, gzip: gzip(&bytes).into(), brotli: brotli(&bytes).into(), identity: bytes.into(), hash }
    }

    /// Shared bytes: a response clones a pointer, not the file.
    pub fn body(&self, coding: Coding) -> &Bytes {
        match coding {
            Coding::Brotli => &self.brotli,
            Coding::Gzip => &self.gzip,
            Coding::Identity => &self.identity,
        }
    }

    /// Strong validators must differ between codings of the same content.
    pub fn etag(&self, coding: Coding) -> String {
        match coding.header() {
            Some(c) => format!("\"{}-{c}\"", self.hash),
            None => format!("\"{}\"", self.hash),
        }
    }

    /// Whether an `If-None-Match` header names this representation (weak
    /// comparison, as RFC 9110 asks for GET).
    pub fn matches(&self, if_none_match: &str, coding: Coding) -> bool {
        let etag = self.etag(coding);
        if_none_match.split(',').map(|t| t.trim().trim_start_matches("W/")).any(|t| t == "*" || t == etag)
    }
}

/// A static file under `/static/`.
pub struct Asset {
    pub name: &'static str,
    /// `app.<hash>.js`: the file's immutable address.
    pub hashed_name: String,
    pub content: Representations,
    /// `sha384-…`, for `integrity` when a CDN serves the file.
    integrity: String,
}

/// What `/static/{file}` refers to.
pub enum Lookup<'a> {
    /// The current content at its hashed name: cache forever.
    Immutable(&'a Asset),
    /// The plain name, or a hash from another release (a rolling deploy, an
    /// old page): the current content, revalidated every time.
    Current(&'a Asset),
}

pub struct Assets {
    files: Vec<Asset>,
    by_name: HashMap<&'static str, usize>,
    pub index: Representations,
    pub admin: Representations,
    /// `Content-Security-Policy` for the pages (admits the asset origin).
    pub csp: String,
    /// Set with `ASSET_BASE_URL`: assets are fetched cross-origin.
    pub cross_origin: bool,
}

impl Assets {
    /// Hashes and compresses everything; `base_url` (no trailing slash) is
    /// prepended to asset URLs in the pages.
    pub fn build(base_url: Option<&str>) -> Assets {
        let mut files: Vec<Asset> = Vec::with_capacity(SOURCES.len());
        for (name, content_type, text) in SOURCES {
            let text = if name.ends_with(".js") { link_imports(text, &files) } else { text.to_string() };
            let content = Representations::new(content_type, text.as_bytes().to_vec());
            let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
            let integrity =
                format!("sha384-{}", base64::engine::general_purpose::STANDARD.encode(Sha384::digest(text.as_bytes())));
            files.push(Asset { name, hashed_name: format!("{stem}.{}.{ext}", content.hash), content, integrity });
        }
        let by_name = files.iter().enumerate().map(|(i, a)| (a.name, i)).collect();
        let base = base_url.unwrap_or("").trim_end_matches('/');
        let page = |html: &str| {
            let rendered = rewrite(html, &files, base);
            Representations::new("text/html; charset=utf-8", rendered.into_bytes())
        };
        let asset_origin = origin(base).map(|o| format!(" {o}")).unwrap_or_default();
        Assets {
            index: page(INDEX_HTML),
            admin: page(ADMIN_HTML),
            csp: format!(
                "default-src 'self'; connect-src 'self' ws: wss:; style-src 'self'{asset_origin}; \
                 script-src 'self'{asset_origin}; img-src 'self' data:; frame-ancestors 'none'; \
                 base-uri 'none'; form-action 'self'"
            ),
            cross_origin: !base.is_empty(),
            files,
            by_name,
        }
    }

    /// `app.js` (plain) or `app.<hash>.js` (hashed, any release).
    pub fn lookup(&self, file: &str) -> Option<Lookup<'_>> {
        if let Some(&i) = self.by_name.get(file) {
            return Some(Lookup::Current(&self.files[i]));
        }
        let (stem, rest) = file.split_once('.')?;
        let (hash, ext) = rest.rsplit_once('.')?;
        if hash.len() != 12 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let asset = self.files.iter().find(|a| a.name.strip_suffix(ext).and_then(|s| s.strip_suffix('.')) == Some(stem))?;
        Some(if asset.content.hash == hash { Lookup::Immutable(asset) } else { Lookup::Current(asset) })
    }

    pub fn files(&self) -> &[Asset] {
        &self.files
    }
}

/// Points every `/static/<name>` reference of a page at the hashed URL.
fn rewrite(html: &str, files: &[Asset], base: &str) -> String {
    let mut out = html.to_string();
    for a in files {
        let url = format!("{base}/static/{}", a.hashed_name);
        let extra =
            if base.is_empty() { String::new() } else { format!(" integrity=\"{}\" crossorigin=\"anonymous\"", a.integrity) };
        out = out.replace(&format!("\"/static/{}\"", a.name), &format!("\"{url}\"{extra}"));
    }
    out
}

/// Points a module's imports of earlier files (`from "./chat-state.js"`) at
/// their hashed names, so a cached module never loads a stale import.
fn link_imports(text: &str, files: &[Asset]) -> String {
    let mut out = text.to_string();
    for a in files {
        out = out.replace(&format!("from \"./{}\"", a.name), &format!("from \"./{}\"", a.hashed_name));
    }
    out
}

/// `https://cdn.example.com` of `https://cdn.example.com/some/path`.
fn origin(base: &str) -> Option<&str> {
    let scheme_end = base.find("://")? + 3;
    let host_end = base[scheme_end..].find('/').map(|i| scheme_end + i).unwrap_or(base.len());
    Some(&base[..host_end])
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 3), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

fn brotli(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() / 3);
    {
        let mut enc = brotli::CompressorWriter::new(&mut out, 4096, 11, 22);
        let _ = enc.write_all(bytes);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_the_smallest_accepted_coding() {
        assert_eq!(Coding::negotiate(Some("gzip, deflate, br, zstd")), Coding::Brotli);
        assert_eq!(Coding::negotiate(Some("gzip")), Coding::Gzip);
        assert_eq!(Coding::negotiate(Some("br;q=0, gzip;q=0.5")), Coding::Gzip);
        assert_eq!(Coding::negotiate(Some("identity")), Coding::Identity);
        assert_eq!(Coding::negotiate(Some("*")), Coding::Gzip);
        assert_eq!(Coding::negotiate(None), Coding::Identity);
    }

    #[test]
    fn pages_point_at_hashed_assets_and_compress() {
        let assets = Assets::build(None);
        let html = String::from_utf8(assets.index.body(Coding::Identity).to_vec()).unwrap_or_default();
        let hashed =
            |name: &str| assets.files().iter().find(|a| a.name == name).map(|a| a.hashed_name.clone()).unwrap_or_default();
        let js = &hashed("chat.js");
        assert!(html.contains(&format!("src=\"/static/{js}\"")), "{html}");
        assert!(!html.contains("\"/static/chat.js\""));
        assert!(html.contains(&format!("href=\"/static/{}\"", hashed("switchboard.js"))), "modules are preloaded: {html}");
        // The entry module imports the others by their hashed names.
        let entry = assets.lookup(js).map(|l| match l {
            Lookup::Immutable(a) | Lookup::Current(a) => String::from_utf8_lossy(a.content.body(Coding::Identity)).into_owned(),
        });
        let entry = entry.unwrap_or_default();
        for dep in ["switchboard.js", "chat-state.js", "chat-views.js"] {
            assert!(entry.contains(&format!("from \"./{}\"", hashed(dep))), "chat.js imports {dep} by its hash");
        }
        assert!(assets.index.body(Coding::Brotli).len() < assets.index.body(Coding::Gzip).len());
        assert!(matches!(assets.lookup(js), Some(Lookup::Immutable(_))));
        assert!(matches!(assets.lookup("chat.js"), Some(Lookup::Current(_))));
        assert!(matches!(assets.lookup("chat.000000000000.js"), Some(Lookup::Current(_))));
        assert!(assets.lookup("app.000000000000.css").is_some_and(|l| matches!(l, Lookup::Current(a) if a.name == "app.css")));
        assert!(assets.lookup("../etc/passwd").is_none());
        assert!(assets.lookup("app.zzzzzzzzzzzz.js").is_none());
    }

    #[test]
    fn a_cdn_base_url_goes_into_urls_csp_and_integrity() {
        let assets = Assets::build(Some("https://cdn.example.com/sb/"));
        let html = String::from_utf8(assets.index.body(Coding::Identity).to_vec()).unwrap_or_default();
        assert!(html.contains("src=\"https://cdn.example.com/sb/static/chat."), "{html}");
        assert!(html.contains("integrity=\"sha384-"));
        assert!(assets.csp.contains("script-src 'self' https://cdn.example.com;"), "{}", assets.csp);
    }

    #[test]
    fn etags_differ_per_coding_and_match_weakly() {
        let assets = Assets::build(None);
        let page = &assets.index;
        assert_ne!(page.etag(Coding::Brotli), page.etag(Coding::Gzip));
        assert!(page.matches(&format!("W/{}", page.etag(Coding::Gzip)), Coding::Gzip));
        assert!(page.matches(&format!("\"x\", {}", page.etag(Coding::Brotli)), Coding::Brotli));
        assert!(!page.matches(&page.etag(Coding::Gzip), Coding::Brotli));
    }
}
