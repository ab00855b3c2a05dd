//! The sync round: `POST /v1/sync`.

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fieldsync_core::protocol::{SyncRequest, WireEncoding};
use fieldsync_core::sync::server::{verify_request, ServerLimits, SyncError};

use super::error::{sync_refusal, ApiError};
use super::state::{authenticate, blocking, read_body, AppState};
use crate::metrics::Metrics;
use crate::store::StoreError;

pub(super) async fn sync(
    state: web::Data<AppState>,
    metrics: web::Data<Metrics>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, state.config.max_request_bytes).await?;
    // Timed from here: the body's upload is the client's network.
    let started = Instant::now();
    // The signature covers the body's bytes in either encoding; the answer
    // comes in the request's encoding. No or another `Content-Type` is
    // JSON, as before CBOR, for the phone app and older devices.
    let encoding = WireEncoding::from_content_type(
        req.headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    let device = authenticate(&state, &req, &body).await?;
    let limits = ServerLimits {
        max_response_bytes: state.config.max_response_bytes,
        ..ServerLimits::default()
    };
    let turn = metrics
        .sync_turn(state.sync_rounds.clone())
        .await
        .map_err(|e| ApiError::internal("sync round gate", &e))?;
    let st = state.clone();
    let dev = device.clone();
    // Decoding and verifying every change is the expensive part of a round
    // and the part a hostile device controls: it runs off the async
    // workers, and before the store's write transaction opens, so no other
    // device waits on it. The response is built only after the commit.
    let (response, offered, stored) = blocking(move || {
        let request = SyncRequest::decode(&body, encoding)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
        let offered: usize = request.docs.iter().map(|d| d.changes.len()).sum();
        let verified = verify_request(request).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                SyncError::<StoreError>::from(e).to_string(),
            )
        })?;
        let round = st
            .store
            .sync_verified(&dev, verified, limits, None)
            .map_err(sync_refusal)?;
        let mut response = round.response;
        // Read after the round's commit, outside its write lock: a zone
        // set by `admin case timezone` reaches devices on their next sync.
        response.case_timezone = st.store.case_timezone(&dev.case_id)?;
        drop(turn);
        Ok::<_, ApiError>((response, offered, round.changes_stored))
    })
    .await?;
    metrics.sync_round_answered(started.elapsed(), stored);
    let received: usize = response.docs.iter().map(|d| d.changes.len()).sum();
    let refused: usize = response.docs.iter().map(|d| d.refused.len()).sum();
    tracing::info!(device = %device.device_id, ?encoding, offered, stored, refused, sent = received, cursor = response.cursor, "sync");
    Ok(HttpResponse::Ok()
        .content_type(encoding.content_type())
        .body(response.encode(encoding)))
}
