//! Handlers for case public keys and coordinator-minted invites:
//! `GET`/`POST /v1/case-keys`, `POST /v1/invites`. Signed requests, thin
//! handlers over `store/case_keys.rs`.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fieldsync_core::case_key_trust::PublishedCaseKey;
use fieldsync_core::model::DeviceRole;
use fieldsync_core::protocol::{CaseKeysResponse, InviteRequest, InviteResponse, PublishResponse};

use super::error::ApiError;
use super::state::{authenticate, blocking, read_body, AppState};
use crate::store::DeviceRecord;

/// Bodies of these routes are a few hundred bytes.
const MAX_BODY: usize = 4 * 1024;
/// Longest lifetime of a coordinator-minted invite: 30 days.
const MAX_DEVICE_INVITE: Duration = Duration::from_secs(30 * 24 * 3600);

fn coordinator_only(device: &DeviceRecord, what: &str) -> Result<(), ApiError> {
    if device.role != DeviceRole::Coordinator {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{what} is for a coordinator's device"),
        ));
    }
    Ok(())
}

/// A signed request from a coordinator's device with a small JSON body:
/// read (bounded), authenticate, check the role, then parse.
async fn coordinator_request<T: serde::de::DeserializeOwned>(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    payload: web::Payload,
    what: &str,
    shape: &str,
) -> Result<(DeviceRecord, T), ApiError> {
    let body = read_body(payload, MAX_BODY).await?;
    let device = authenticate(state, req, &body).await?;
    coordinator_only(&device, what)?;
    let parsed = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("{shape}: {e}")))?;
    Ok((device, parsed))
}

/// The case's published public keys, for any enrolled device of the case.
pub(super) async fn list(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let device = authenticate(&state, &req, b"").await?;
    let st = state.clone();
    let case_keys = blocking(move || st.store.case_public_keys(&device.case_id)).await?;
    Ok(HttpResponse::Ok().json(CaseKeysResponse { case_keys }))
}

/// A coordinator's device publishes a case public key it signed.
pub(super) async fn publish(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (device, published): (_, PublishedCaseKey) = coordinator_request(
        &state,
        &req,
        payload,
        "publishing a case key",
        "the case key is not valid JSON {epoch, public_key, signer, signature}",
    )
    .await?;
    let verified = published
        .verify(&device.case_id)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    if verified.signer != device.public_key {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "a case key must be signed by the device that publishes it",
        ));
    }
    let st = state.clone();
    let dev = device.clone();
    let stored = blocking(move || st.store.publish_case_key(&dev, &verified)).await?;
    if stored {
        tracing::info!(device = %device.device_id, epoch = published.epoch, "case key published");
    }
    Ok(HttpResponse::Ok().json(PublishResponse { stored }))
}

/// A coordinator's device mints a one-time enrollment token for its case.
pub(super) async fn invite(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (device, request): (_, InviteRequest) = coordinator_request(
        &state,
        &req,
        payload,
        "minting an invite",
        "the invite request is not valid JSON {role, expires_secs}",
    )
    .await?;
    let ttl = Duration::from_secs(request.expires_secs);
    if ttl.is_zero() || ttl > MAX_DEVICE_INVITE {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "an invite from a device lasts between 1 second and 30 days; ask for a shorter --expires",
        ));
    }
    let st = state.clone();
    let dev = device.clone();
    let role = request.role;
    let (token, expires_at) = blocking(move || st.store.create_invite_by(&dev, role, ttl)).await?;
    tracing::info!(device = %device.device_id, role = role.as_str(), "invite minted by a device");
    Ok(HttpResponse::Ok().json(InviteResponse {
        token,
        role,
        expires_at,
    }))
}
