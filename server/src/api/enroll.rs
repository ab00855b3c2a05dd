//! Enrollment: `POST /v1/enroll`, signed by the key being enrolled, with
//! a one-time invite token.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fieldsync_core::identity::PublicKey;
use fieldsync_core::model::DeviceRole;
use fieldsync_core::protocol::{EnrollRequest, EnrollResponse};

use super::error::ApiError;
use super::state::{blocking, read_body, signed_parts, AppState};
use crate::refusal_log;
use crate::store::StoreError;

pub(super) async fn enroll(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(payload, 64 * 1024).await?;
    // Nothing here is authenticated until the store took the token: a
    // refusal before that is only logged, at a bounded rate.
    let unauthenticated = |e: ApiError| {
        refusal_log::refused("/v1/enroll", None, e.message());
        e
    };
    let request: EnrollRequest = serde_json::from_slice(&body)
        .map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the enrollment request is not valid JSON: {e}"),
            )
        })
        .map_err(unauthenticated)?;
    let key = hex::decode(&request.public_key)
        .ok()
        .and_then(|bytes| PublicKey::from_bytes(&bytes).ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "public_key must be 64 hexadecimal characters (an Ed25519 public key)",
            )
        })
        .map_err(unauthenticated)?;
    // The request is signed by the key being enrolled: proof of possession.
    let (auth, path) = signed_parts(&req).map_err(unauthenticated)?;
    auth.verify(
        &key,
        "POST",
        &path,
        &body,
        chrono::Utc::now().timestamp(),
        state.config.auth_window_secs,
    )
    .map_err(|e| unauthenticated(ApiError::unauthorized(&e)))?;
    let st = state.clone();
    // The store audits a refusal of a token it issued (used, expired).
    let device = blocking(move || {
        st.store.enroll(&request.token, &key).map_err(|e| match e {
            StoreError::InvalidToken => unauthenticated(ApiError::from(e)),
            other => ApiError::from(other),
        })
    })
    .await?;
    tracing::info!(device = %device.device_id, case = %device.case_id, role = device.role.as_str(), "device enrolled");
    let import_salt = match device.role {
        DeviceRole::Coordinator => {
            let (st, case) = (state.clone(), device.case_id.clone());
            Some(blocking(move || st.store.import_salt(&case)).await?)
        }
        DeviceRole::Reporter => None,
    };
    let st = state.clone();
    let case = device.case_id.clone();
    let (case_keys, case_timezone) = blocking(move || {
        Ok::<_, StoreError>((
            st.store.case_public_keys(&case)?,
            st.store.case_timezone(&case)?,
        ))
    })
    .await?;
    Ok(HttpResponse::Ok().json(EnrollResponse {
        device_id: device.device_id.to_string(),
        case_id: device.case_id.to_string(),
        case_name: device.case_name.clone(),
        role: device.role,
        import_salt,
        case_keys,
        case_timezone,
    }))
}
