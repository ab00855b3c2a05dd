//! The reporters' phone app (`server/app/`), served at `/app/` from files
//! embedded at build time (`build.rs`): the app works on a LAN with no
//! internet, and nothing it runs comes from any other origin.
//!
//! Its Content-Security-Policy is the review page's with one addition,
//! `'wasm-unsafe-eval'`, which WebAssembly (the Automerge engine) needs and
//! which allows no `eval` of JavaScript; plus `worker-src 'self'` for its
//! service worker and `manifest-src 'self'`.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

/// One embedded file of the app.
pub struct AppFile {
    /// Path under `/app/`, e.g. `lib/sync.mjs`.
    pub path: &'static str,
    pub content_type: &'static str,
    pub etag: &'static str,
    pub bytes: &'static [u8],
    /// The same bytes gzipped at build time, for files worth it.
    pub gzip: Option<&'static [u8]>,
}

/// Every file of `server/app/` but the vendoring script.
pub const FILES: &[AppFile] = include!(concat!(env!("OUT_DIR"), "/app_files.rs"));

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/app", web::get().to(redirect))
        .route("/app/", web::get().to(index))
        .route("/app/", web::head().to(index))
        .route("/app/{path:.+}", web::get().to(file))
        .route("/app/{path:.+}", web::head().to(file));
}

pub fn file_at(path: &str) -> Option<&'static AppFile> {
    FILES.iter().find(|f| f.path == path)
}

async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/app/"))
        .finish()
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, "index.html")
}

async fn file(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    serve(&req, &path)
}

fn serve(req: &HttpRequest, path: &str) -> HttpResponse {
    let Some(file) = file_at(path) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .insert_header(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
            .body("no such file\n");
    };
    let mut response = HttpResponse::Ok();
    response
        .content_type(file.content_type)
        .insert_header(("Content-Security-Policy", CONTENT_SECURITY_POLICY))
        .insert_header((header::ETAG, file.etag))
        .insert_header((header::VARY, "Accept-Encoding"))
        // The service worker keeps the app for offline use; the browser's
        // own cache must always ask, so a new version is seen at once.
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == file.etag));
    if not_modified {
        return response
            .status(actix_web::http::StatusCode::NOT_MODIFIED)
            .finish();
    }
    match file.gzip {
        Some(gz) if accepts_gzip(req) => response
            .insert_header((header::CONTENT_ENCODING, "gzip"))
            .body(gz),
        _ => response.body(file.bytes),
    }
}

fn accepts_gzip(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_of_the_app_folder_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("app");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_none_or(|e| e != "sh") {
                    on_disk.push(
                        path.strip_prefix(&root)
                            .unwrap()
                            .to_str()
                            .unwrap()
                            .to_owned(),
                    );
                }
            }
        }
        on_disk.sort();
        let embedded: Vec<String> = FILES.iter().map(|f| f.path.to_owned()).collect();
        assert_eq!(embedded, on_disk);
        for f in FILES {
            assert_eq!(
                std::fs::read(root.join(f.path)).unwrap(),
                f.bytes,
                "{}",
                f.path
            );
        }
    }

    #[test]
    fn the_gzip_copies_inflate_to_the_files() {
        use std::io::Read;
        let wasm = file_at("vendor/automerge/automerge.wasm").unwrap();
        for f in FILES.iter().filter(|f| f.gzip.is_some()) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(f.gzip.unwrap())
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, f.bytes, "{}", f.path);
        }
        assert!(wasm.gzip.unwrap().len() < wasm.bytes.len() / 2);
    }
}
