//! The reporters' phone app (`server/app/`), served at `/app/` from files
//! embedded at build time (`build.rs`): the app works on a LAN with no
//! internet, and nothing it runs comes from any other origin.
//!
//! Its Content-Security-Policy is the review page's with
//! `'wasm-unsafe-eval'` added, which WebAssembly (the Automerge engine)
//! needs and which allows no `eval` of JavaScript, and `manifest-src
//! 'self'`, without which `default-src 'none'` blocks the web app manifest
//! and the app cannot be installed. The service worker needs nothing more:
//! `worker-src` falls back to `script-src 'self'`. `form-action` is
//! `'none'`: the app posts no form; it calls the API with `fetch`.

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

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; manifest-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

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

    async fn get(path: &str, headers: &[(&str, &str)]) -> actix_web::dev::ServiceResponse {
        let app = actix_web::test::init_service(
            actix_web::App::new()
                .configure(routes)
                .configure(crate::api::routes),
        )
        .await;
        let mut req = actix_web::test::TestRequest::get().uri(path);
        for (name, value) in headers {
            req = req.insert_header((*name, *value));
        }
        actix_web::test::call_service(&app, req.to_request()).await
    }

    fn header<'a>(res: &'a actix_web::dev::ServiceResponse, name: &str) -> &'a str {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    #[actix_web::test]
    async fn the_app_alone_may_run_webassembly_and_nothing_else_is_relaxed() {
        let app = get("/app/vendor/automerge/automerge.wasm", &[]).await;
        assert_eq!(app.status(), 200);
        assert_eq!(header(&app, "content-type"), "application/wasm");
        let csp = header(&app, "content-security-policy");
        assert!(
            csp.contains("script-src 'self' 'wasm-unsafe-eval';"),
            "{csp}"
        );
        assert!(
            !csp.contains("'unsafe-eval'") && !csp.contains("'unsafe-inline'"),
            "{csp}"
        );
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        // The review page keeps its own, stricter policy (set by lib.rs for
        // every other response): no WebAssembly there.
        assert!(!crate::api::SECURITY_HEADERS[0].1.contains("wasm"));
        let missing = get("/app/nothing-here.js", &[]).await;
        assert_eq!(missing.status(), 404);
    }

    #[actix_web::test]
    async fn a_browser_that_takes_gzip_gets_the_build_time_copy_and_a_revalidation_gets_304() {
        let plain = get("/app/vendor/automerge/automerge.wasm", &[]).await;
        let etag = header(&plain, "etag").to_owned();
        assert!(header(&plain, "content-encoding").is_empty());
        let body = actix_web::test::read_body(plain).await;
        assert_eq!(
            body.len(),
            file_at("vendor/automerge/automerge.wasm")
                .unwrap()
                .bytes
                .len()
        );

        let gz = get(
            "/app/vendor/automerge/automerge.wasm",
            &[("accept-encoding", "br;q=1.0, gzip;q=0.8")],
        )
        .await;
        assert_eq!(header(&gz, "content-encoding"), "gzip");
        assert_eq!(header(&gz, "vary"), "Accept-Encoding");
        let zipped = actix_web::test::read_body(gz).await;
        assert!(zipped.len() < body.len() / 2);

        let refused = get(
            "/app/vendor/automerge/automerge.wasm",
            &[("accept-encoding", "gzip;q=0")],
        )
        .await;
        assert!(header(&refused, "content-encoding").is_empty());

        let again = get(
            "/app/vendor/automerge/automerge.wasm",
            &[("if-none-match", etag.as_str())],
        )
        .await;
        assert_eq!(again.status(), 304);
        assert!(actix_web::test::read_body(again).await.is_empty());
    }

    #[test]
    fn no_file_of_the_app_loads_anything_from_another_origin() {
        assert!(find_remote(r#"<script src="https://cdn.example/x.js">"#).is_some());
        assert!(find_remote(r#"import x from "//cdn.example/x.mjs""#).is_some());
        assert!(find_remote(r#"fetch('/v1/sync')"#).is_none());
        // Vendored code is checked too: a URL in a comment is harmless, but
        // one in code would be a request the CSP blocks at best.
        for f in FILES
            .iter()
            .filter(|f| f.content_type.starts_with("text/") || f.content_type.contains("json"))
        {
            let text = std::str::from_utf8(f.bytes).unwrap();
            for (line_no, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                let trimmed = code.trim_start();
                if trimmed.starts_with('*') || trimmed.starts_with("/*") {
                    continue;
                }
                if let Some(url) = find_remote(code) {
                    panic!("{}:{}: {url}", f.path, line_no + 1);
                }
            }
        }
    }

    /// A `src=`, `href=`, `url(`, `import` or `fetch(` of an absolute
    /// http(s) URL or a protocol-relative one.
    fn find_remote(code: &str) -> Option<String> {
        for marker in [
            "src=\"",
            "href=\"",
            "url(",
            "import(\"",
            "from \"",
            "fetch(\"",
            "fetch('",
            "from '",
        ] {
            let mut rest = code;
            while let Some(at) = rest.find(marker) {
                let after = rest[at + marker.len()..].trim_start_matches(['\'', '"']);
                if after.starts_with("http:")
                    || after.starts_with("https:")
                    || after.starts_with("//")
                {
                    return Some(after.chars().take(80).collect());
                }
                rest = &rest[at + marker.len()..];
            }
        }
        None
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
