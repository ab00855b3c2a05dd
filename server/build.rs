//! Embeds the phone app (`server/app/`, served at `/app/`) in the binary:
//! every file, its content type, a strong ETag, and a gzip copy made here at
//! build time so a phone on a slow network downloads the 3.6 MB Automerge
//! wasm as about a third of that, without the server compressing per request.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    // Read when the script runs, not baked in when it is compiled: cargo
    // may reuse this script's binary for a checkout at another path (a
    // worktree sharing the target directory).
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let app = Path::new(&manifest).join("app");
    println!("cargo:rerun-if-changed={}", app.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let gz_dir = out.join("app-gz");
    std::fs::create_dir_all(&gz_dir).unwrap();
    let mut files = Vec::new();
    walk(&app, &app, &mut files);
    files.sort();
    let mut table = String::from("&[\n");
    for (i, rel) in files.iter().enumerate() {
        let path = app.join(rel);
        println!("cargo:rerun-if-changed={}", path.display());
        let bytes = std::fs::read(&path).unwrap();
        let etag = etag(&bytes);
        let content_type = content_type(rel);
        let gz = if compressible(content_type) && bytes.len() > 512 {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            enc.write_all(&bytes).unwrap();
            let gz = enc.finish().unwrap();
            let gz_path = gz_dir.join(format!("{i}.gz"));
            std::fs::write(&gz_path, gz).unwrap();
            format!("Some(include_bytes!({:?}))", gz_path.display().to_string())
        } else {
            "None".to_owned()
        };
        writeln!(
            table,
            "    AppFile {{ path: {rel:?}, content_type: {content_type:?}, etag: {etag:?}, bytes: include_bytes!({:?}), gzip: {gz} }},",
            path.display().to_string()
        )
        .unwrap();
    }
    table.push(']');
    std::fs::write(out.join("app_files.rs"), table).unwrap();
}

/// Files the app serves: everything under `app/` but the vendoring script.
fn walk(root: &Path, dir: &Path, files: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(root, &path, files);
        } else {
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .replace('\\', "/");
            if !rel.ends_with(".sh") && !rel.split('/').any(|p| p.starts_with('.')) {
                files.push(rel);
            }
        }
    }
}

fn content_type(rel: &str) -> &'static str {
    match rel.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("webmanifest") => "application/manifest+json",
        Some("wasm") => "application/wasm",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "text/plain; charset=utf-8",
    }
}

fn compressible(content_type: &str) -> bool {
    !content_type.starts_with("image/png")
}

/// FNV-1a 64 of the bytes: enough to tell versions apart in an ETag, with
/// no dependency but the standard library.
fn etag(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}-{}\"", bytes.len())
}
