//! The review web app's static files, embedded in the binary so the page
//! works on a LAN with no internet and no files beside the server.

/// (file name under `/assets/`, content type, bytes).
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/app.css"),
    ),
];

/// The page every client-side route answers with.
pub const INDEX_HTML: &[u8] = include_bytes!("../web/index.html");

pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, content_type, bytes)| (*content_type, *bytes))
}
