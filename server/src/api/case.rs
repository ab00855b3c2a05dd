//! What a coordinator's device reads of its case: `GET /v1/timeline`,
//! `GET /v1/devices`, `GET /v1/case` (with the import salt).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use fieldsync_core::model::DeviceRole;
use fieldsync_core::protocol::CaseInfo;

use super::error::ApiError;
use super::state::{authenticate, blocking, AppState};
use crate::store::{DeviceRecord, TimelineQuery};

pub(super) async fn timeline(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<TimelineQuery>,
) -> Result<HttpResponse, ApiError> {
    let device = authenticate(&state, &req, b"").await?;
    coordinators_only(&device, "the case timeline is for coordinators; a reporter sees its own reports with `fieldsync timeline`")?;
    let st = state.clone();
    let page = blocking(move || st.store.timeline(&device.case_id, &query.into_inner())).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// The case's devices, for a coordinator's device: it keeps them to check
/// offline that a bundle comes from an enrolled, unrevoked device.
pub(super) async fn devices(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let device = authenticate(&state, &req, b"").await?;
    coordinators_only(&device, "the list of a case's devices is for coordinators")?;
    let st = state.clone();
    let case = device.case_name.clone();
    let devices = blocking(move || st.store.devices(Some(&case))).await?;
    let roster: Vec<serde_json::Value> = devices
        .iter()
        .map(|d| {
            serde_json::json!({
                "device_id": d.device_id.to_string(),
                "public_key": d.public_key_hex,
                "role": d.role.as_str(),
                "revoked_at": d.revoked_at,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(roster))
}

/// The case, for a coordinator's device: with its import salt, which a
/// device enrolled before the salt existed gets on its next sync.
pub(super) async fn case(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let device = authenticate(&state, &req, b"").await?;
    coordinators_only(
        &device,
        "the case's import salt is for coordinators' devices",
    )?;
    let (st, case) = (state.clone(), device.case_id.clone());
    let import_salt = blocking(move || st.store.import_salt(&case)).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(CaseInfo {
            case_id: device.case_id.to_string(),
            case_name: device.case_name.clone(),
            import_salt,
        }))
}

/// 403 with `refusal` unless the device is a coordinator's.
fn coordinators_only(device: &DeviceRecord, refusal: &'static str) -> Result<(), ApiError> {
    if device.role == DeviceRole::Coordinator {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, refusal))
    }
}
