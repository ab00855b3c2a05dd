//! What every handler shares: the server's state, the one way to run
//! blocking work off the async executor, the bounded body reader, and the
//! authentication of a signed request.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use fieldsync_core::protocol::error_code;
use fieldsync_core::request_auth::RequestAuth;
use futures_util::StreamExt;

use super::error::ApiError;
use crate::blob_store::BlobStore;
use crate::config::Config;
use crate::refusal_log;
use crate::store::{DeviceRecord, ServerStorage};

/// Shared state of the running server.
///
/// The store is a trait object: every handler is written once against
/// [`ServerStorage`], with no type parameter to carry through the routes,
/// and another database stands in by building this with its own store.
/// The cost, one indirect call per store operation, is nothing beside the
/// database work behind it.
pub struct AppState {
    pub store: Arc<dyn ServerStorage>,
    /// The blobs, in the data directory or a bucket: handlers never know
    /// which (`blob_store/`).
    pub blobs: BlobStore,
    pub config: Config,
    /// Sync rounds decoded, verified and applied at once: one per core.
    /// More would not go faster (each uses a core while it runs), and every
    /// round in progress holds its request decoded, its changes parsed and
    /// its plan; a round waiting for a permit holds only its body.
    pub sync_rounds: Arc<tokio::sync::Semaphore>,
}

/// The gate for [`AppState::sync_rounds`].
pub fn sync_round_gate() -> Arc<tokio::sync::Semaphore> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Arc::new(tokio::sync::Semaphore::new(cores.max(2)))
}

/// Runs blocking file or database work off the async executor, and maps
/// its error (or a failed blocking task) to the client's answer.
pub(crate) async fn blocking<T, E>(
    f: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    E: Send + 'static,
    ApiError: From<E>,
{
    web::block(f)
        .await
        .map_err(|e| ApiError::internal("blocking task", &e))?
        .map_err(ApiError::from)
}

/// Reads a request body, refusing it with 413 once it passes `limit`.
/// (actix's `PayloadConfig` does not apply to a raw `Payload`.)
pub(crate) async fn read_body(
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the request body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is over the server's limit of {limit} bytes; sync in smaller rounds (fieldsync does this by itself when its --max-request-bytes is at most the server's)"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The signature headers of a request and the path (with query) it signs.
pub(crate) fn signed_parts(req: &HttpRequest) -> Result<(RequestAuth, String), ApiError> {
    let auth =
        RequestAuth::from_headers(|name| req.headers().get(name).and_then(|v| v.to_str().ok()))
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.to_string()))?;
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    Ok((auth, path))
}

/// Authenticates a signed request: the device is enrolled, the signature
/// verifies, the clock is within the window, the nonce is new, and the
/// device is not revoked.
///
/// A refusal before all but the last of these held is unauthenticated:
/// anyone can send one, so it is logged at a bounded rate and never
/// written to the database (`refusal_log.rs`). A revoked device's fresh,
/// correctly signed request is audited: it is that device's key at work.
pub(crate) async fn authenticate(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    body: &[u8],
) -> Result<DeviceRecord, ApiError> {
    let route = req.path().to_owned();
    let (auth, path) =
        signed_parts(req).inspect_err(|e| refusal_log::refused(&route, None, e.message()))?;
    let method = req.method().as_str().to_owned();
    let body = body.to_vec();
    let window = state.config.auth_window_secs;
    let st = state.clone();
    blocking(move || -> Result<DeviceRecord, ApiError> {
        let store = &st.store;
        let unauthenticated = |error: ApiError| {
            refusal_log::refused(&route, Some(auth.device.as_str()), error.message());
            error
        };
        let Some(device) = store.device(&auth.device)? else {
            return Err(unauthenticated(ApiError::new(StatusCode::UNAUTHORIZED, format!("device {} is not enrolled on this server; enroll it with `fieldsync device enroll`", auth.device))));
        };
        let now = chrono::Utc::now().timestamp();
        if let Err(e) = auth.verify(&device.public_key, &method, &path, &body, now, window) {
            // The answer says how far off a clock is.
            return Err(unauthenticated(ApiError::unauthorized(&e)));
        }
        // The nonce before revocation: a replayed request of a revoked
        // device is no more authenticated than any other replay.
        if !store.use_nonce(&device.device_id, &auth.nonce, auth.timestamp, window)? {
            return Err(unauthenticated(ApiError::new(StatusCode::UNAUTHORIZED, "this request was already received (replayed nonce); a new request needs a new nonce").replayed()));
        }
        if device.revoked_at.is_some() {
            let why = format!("device {} was revoked; it can no longer sync. Its unsynced reports remain on the device", device.device_id);
            if let Err(e) = store.audit("request-refused", Some(&device.device_id), &why) {
                tracing::error!(error = %e, "audit");
            }
            return Err(ApiError::new(StatusCode::FORBIDDEN, why).with_code(error_code::REVOKED));
        }
        Ok(device)
    })
    .await
}

/// Records a refusal (a 4xx) in the audit log; returns the error. The
/// detail is the message the client gets: ids and sizes, never content.
pub(crate) async fn audited(
    state: &web::Data<AppState>,
    device: &DeviceRecord,
    event: &'static str,
    error: ApiError,
) -> ApiError {
    if !error.status().is_client_error() {
        return error;
    }
    let (st, id) = (state.clone(), device.device_id.clone());
    let detail = format!("{} {}", error.status().as_u16(), error.message());
    if let Err(e) = blocking(move || st.store.audit(event, Some(&id), &detail)).await {
        tracing::error!(error = %e, "audit");
    }
    error
}
