//! The HTTP API (actix-web). Handlers are thin: read the body (bounded),
//! authenticate, call the store off the async executor (`state::blocking`), map
//! errors to statuses (`error.rs`, the only place that does). Storage
//! errors are logged and never sent to the client.
//!
//! | file | holds |
//! |---|---|
//! | `error.rs` | [`ApiError`] and every mapping of an error to a status |
//! | `state.rs` | [`AppState`], `blocking`, the bounded body reader, `authenticate` |
//! | `enroll.rs` | `POST /v1/enroll` |
//! | `sync.rs` | `POST /v1/sync` |
//! | `case.rs` | `GET /v1/timeline`, `GET /v1/devices`, `GET /v1/case` (coordinators) |
//! | `keys.rs` | `GET`/`POST /v1/case-keys`, `POST /v1/invites` |
//! | `uploads.rs` | `OPTIONS`/`POST /v1/uploads`, `HEAD`/`PATCH /v1/uploads/{id}` |
//! | `blobs.rs` | `GET`/`HEAD /v1/blobs/{blob id}` |
//! | `review.rs` | the review web app: its page and `/web/…` |
//!
//! [`routes`] lists every route.
//!
//! The blob API: resumable uploads of attachment ciphertext (tus 1.0 core
//! with the `creation` and `expiration` extensions) and range downloads.
//! The server only ever sees ciphertext; it stores it per case under its
//! SHA-256 and never logs a byte of it.
//!
//! | request | answer |
//! |---|---|
//! | `OPTIONS /v1/uploads` (unsigned) | 204, `Tus-Version`, `Tus-Extension: creation,expiration`, `Tus-Max-Size` |
//! | `POST /v1/uploads`, `Upload-Length: N`, `Upload-Metadata: blob <b64 hex sha256>,report <b64 report id>` | 201, `Location: /v1/uploads/<id>`, `Upload-Offset`, `Upload-Expires` (while incomplete) |
//! | `HEAD /v1/uploads/<id>` | 200, `Upload-Offset`, `Upload-Length`, `Upload-Metadata`, `Cache-Control: no-store`, `Upload-Expires` (while incomplete) |
//! | `PATCH /v1/uploads/<id>`, `Content-Type: application/offset+octet-stream`, `Upload-Offset: K` | 204, `Upload-Offset`; 409 (with `Upload-Offset`) when K is not the offset |
//! | `GET`/`HEAD /v1/blobs/<blob id>`, optional `Range: bytes=K-` or `bytes=K-L` | 200 or 206 (`Content-Range`), the ciphertext; 416 past the end |
//!
//! Every response carries `Tus-Resumable: 1.0.0`; errors are JSON
//! `{error, server_time}` like every other route.
//!
//! **Signatures cover an empty body.** Every request but `OPTIONS` is
//! signed like `/v1/sync` (`request_auth.rs`), but for all blob routes the
//! signature is computed over `b""`, even for a PATCH that carries bytes.
//! The bytes of an upload are authenticated by the final check instead
//! (like S3's UNSIGNED-PAYLOAD): an upload completes only if the SHA-256 of
//! all its bytes equals the blob id it was created for, and the blob id is
//! in the report document the device signed. A PATCH body (or its
//! `Upload-Offset`) altered in transit therefore makes the upload fail
//! with 422, never stores altered bytes.
//!
//! Uploads: the offset is what the upload's partial holds (`blob_store/`:
//! the length of a file on disk, or the chain of parts in a bucket), so it
//! survives a SIGKILL of the server. The bytes of a PATCH whose client
//! went away mid-body are kept (durably) and the offset advances over
//! them, so a resume sends only what is missing. One PATCH at a time per
//! upload (a second gets 423 Locked in one process, 409 if through
//! another it lost the race for the offset in the bucket); the lock is
//! released as soon as the first ends, also when its client went away or
//! sent nothing for `tus::BODY_IDLE_TIMEOUT`. A body is written in batches of
//! about `tus::WRITE_BATCH` bytes off the async executor; no blob is ever held
//! whole in memory. When the offset reaches the length the bytes are
//! hashed and stored as `blobs/<case>/<blob id>` (`BlobStore::seal`) and
//! only then marked stored and answered 204.
//!
//! An incomplete upload untouched for `--upload-expiry-secs` (every PATCH
//! extends it) is deleted, bytes and row, by `tus::sweep`, which `upkeep.rs`
//! runs at start and then every `tus::sweep_interval`.

use actix_web::http::Method;
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpResponse};

mod blobs;
mod case;
mod enroll;
mod error;
mod keys;
mod review;
mod state;
mod sync;
mod uploads;

pub use error::ApiError;
pub use state::{sync_round_gate, AppState};

use crate::tus::TUS_VERSION;

/// The headers every response of the server carries: the page may load
/// scripts, styles and data only from this origin, decrypted attachments
/// only as `blob:` URLs, and may not be framed.
pub const SECURITY_HEADERS: [(&str, &str); 4] = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
];

/// Every route of the server but the phone app's files (`phone_app.rs`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/v1/enroll", web::post().to(enroll::enroll))
        .route("/v1/sync", web::post().to(sync::sync))
        .route("/v1/timeline", web::get().to(case::timeline))
        .route("/v1/devices", web::get().to(case::devices))
        .route("/v1/case", web::get().to(case::case))
        .route("/v1/case-keys", web::get().to(keys::list))
        .route("/v1/case-keys", web::post().to(keys::publish))
        .route("/v1/invites", web::post().to(keys::invite));
    cfg.service(
        web::resource("/v1/uploads")
            .wrap(tus_resumable())
            .route(web::method(Method::OPTIONS).to(uploads::options))
            .route(web::post().to(uploads::create)),
    )
    .service(
        web::resource("/v1/uploads/{id}")
            .wrap(tus_resumable())
            .route(web::method(Method::HEAD).to(uploads::head))
            .route(web::method(Method::PATCH).to(uploads::patch)),
    )
    .service(
        web::resource("/v1/blobs/{blob}")
            .wrap(tus_resumable())
            .route(web::get().to(blobs::get_blob))
            .route(web::method(Method::HEAD).to(blobs::get_blob)),
    );
    cfg.route("/", web::get().to(review::index))
        .route("/login", web::get().to(review::index))
        .route("/report/{id}", web::get().to(review::index))
        .route("/assets/{file}", web::get().to(review::asset))
        .route("/web/session", web::post().to(review::start_session))
        .route("/web/logout", web::post().to(review::logout))
        .route("/web/api/me", web::get().to(review::me))
        .route("/web/api/timeline", web::get().to(review::timeline))
        .route("/web/api/devices", web::get().to(review::devices))
        .route("/web/api/reports/{id}", web::get().to(review::report))
        .route(
            "/web/api/reports/{id}/prepare",
            web::post().to(review::prepare),
        )
        .route(
            "/web/api/reports/{id}/commit",
            web::post().to(review::commit),
        )
        .route("/web/api/blobs/{blob}", web::get().to(review::blob));
}

/// Every response of the blob API says which tus version it speaks.
fn tus_resumable() -> DefaultHeaders {
    DefaultHeaders::new().add(("Tus-Resumable", TUS_VERSION))
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}
