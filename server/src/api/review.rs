//! The review web app: its static page and the JSON API the page calls.
//!
//! What a change touched and which fields conflict come from the core's
//! `document` queries: no key of the report's layout is named here.
//!
//! Routes: `GET /`, `/login`, `/report/{id}` (the page), `GET /assets/{file}`,
//! `POST /web/session`, `POST /web/logout`, and under `/web/api/`: `me`,
//! `timeline`, `devices`, `reports/{id}`, `blobs/{blob id}`,
//! `reports/{id}/prepare`, `reports/{id}/commit`.
//!
//! A browser proves itself with a session cookie started from a login
//! certificate (`fieldsync web-login`, [`fieldsync_core::web_login`]); every
//! POST also carries the session's CSRF token in a header and, when the
//! browser sends one, a same-origin `Origin`. The page's review edits are
//! Automerge changes by the session's own key: the server builds the change
//! (`prepare`); the page decodes it, checks it is exactly the edit asked for
//! on the heads and map objects the report answer showed (`objects`), and
//! signs the hash it computes from the bytes (server/web/change.js); and
//! `commit` applies it through the same sync path as a device's change,
//! policy checks and all. The
//! server never sees the session's private key or a case key: both travel
//! only in the login link's fragment.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use automerge::{AutoCommit, Automerge, Change};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use fieldsync_core::document::{self, read_report};
use fieldsync_core::identity::Signature;
use fieldsync_core::model::{Edit, Place, ReviewStatus};
use fieldsync_core::signed_change::{attribute, SignedChange};
use fieldsync_core::sync::server::{ServerLimits, SyncError, VerifiedOffer, VerifiedRequest};
use fieldsync_core::web_login::{delegated_signature, LoginCertificate};
use fieldsync_core::{ReportDocument, ReportId};
use serde::Deserialize;
use serde_json::{json, Value};

use super::blobs::serve_blob;
use super::error::{login_refusal, ApiError};
use super::state::{blocking, read_body, AppState};
use crate::metrics::Metrics;
use crate::public_origin::scheme_and_host;
use crate::store::{LoginRefusal, StoredReport, SyncStoreError, TimelineQuery, WebSession};
use crate::web_assets;

const COOKIE: &str = "fs_session";
const CSRF_HEADER: &str = "X-Fieldsync-CSRF";
/// Bodies of the web API are small JSON documents.
const MAX_BODY: usize = 256 * 1024;

pub(super) async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(web_assets::INDEX_HTML)
}

pub(super) async fn asset(path: web::Path<String>) -> HttpResponse {
    match web_assets::asset(&path) {
        Some((content_type, bytes)) => HttpResponse::Ok()
            .content_type(content_type)
            .insert_header(("Cache-Control", "no-cache"))
            .body(bytes),
        None => HttpResponse::NotFound()
            .content_type("text/plain")
            .body("no such file\n"),
    }
}

fn now() -> i64 {
    Utc::now().timestamp()
}

/// The live session of this request's cookie, or 401.
async fn session(state: &web::Data<AppState>, req: &HttpRequest) -> Result<WebSession, ApiError> {
    let Some(cookie) = req.cookie(COOKIE) else {
        return Err(ended());
    };
    let value = cookie.value().to_owned();
    let st = state.clone();
    blocking(move || st.store.web_session(&value, now()))
        .await?
        .ok_or_else(ended)
}

fn ended() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "no review session, or it ended (expired, logged out, or its device was revoked); run `fieldsync --home H web-login` on a coordinator device and open the new link",
    )
}

/// A live session, for a state-changing request: the CSRF header must
/// match, and a browser-sent `Origin` must be this server's.
async fn session_for_change(
    state: &web::Data<AppState>,
    req: &HttpRequest,
) -> Result<WebSession, ApiError> {
    let session = session(state, req).await?;
    let sent = req
        .headers()
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !constant_time_eq(sent.as_bytes(), session.csrf.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("the request lacks this session's {CSRF_HEADER} header; reload the page"),
        ));
    }
    check_origin(state, req)?;
    Ok(session)
}

fn check_origin(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    let Some(origin) = req.headers().get("Origin").and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let (scheme, host) = scheme_and_host(req, state.config.trust_proxy);
    let expected = format!("{scheme}://{host}");
    if origin != expected {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "this request comes from another site; review changes are accepted only from the review page itself",
        ));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn me_json(session: &WebSession) -> Value {
    json!({
        "csrf": session.csrf,
        "device_id": session.device.device_id.to_string(),
        "case": session.device.case_name,
        "role": session.device.role.as_str(),
        "session_public_key": hex::encode(session.session_key.as_bytes()),
        "expires_at": DateTime::from_timestamp(session.expires_at, 0)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
    })
}

/// What both change routes read first, in this order: the live session
/// (before any body is read), the report id, then the body, bounded by
/// `MAX_BODY` before it is parsed.
async fn change_request<T: for<'de> Deserialize<'de>>(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    path: &str,
    payload: web::Payload,
    what: &str,
) -> Result<(WebSession, ReportId, T), ApiError> {
    let session = session_for_change(state, req).await?;
    let id = parse_report_id(path)?;
    let body = read_body(payload, MAX_BODY).await?;
    Ok((session, id, json_body(&body, what)?))
}

fn json_body<T: for<'de> Deserialize<'de>>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the {what} is not valid JSON of the expected shape: {e}"),
        )
    })
}

#[derive(Deserialize)]
struct LoginBody {
    token: String,
}

pub(super) async fn start_session(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    check_origin(&state, &req)?;
    let body = read_body(payload, MAX_BODY).await?;
    let LoginBody { token } = json_body(&body, "login request")?;
    let cert = LoginCertificate::from_token(&token).map_err(|e| {
        let error = ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!("this login link is not valid ({e}); run `fieldsync web-login` again and copy the whole link"),
        );
        crate::refusal_log::refused("/web/session", None, error.message());
        error
    })?;
    let st = state.clone();
    let started = blocking(move || st.store.start_web_session(&cert, now())).await?;
    let new = started.map_err(|why| {
        let error = login_refusal(&why);
        if why == LoginRefusal::UnknownDevice {
            crate::refusal_log::refused("/web/session", None, error.message());
        }
        error
    })?;
    tracing::info!(device = %new.session.device.device_id, "review session started");
    let lifetime = (new.session.expires_at - now()).max(0);
    let cookie = Cookie::build(COOKIE, new.cookie.clone())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(scheme_and_host(&req, state.config.trust_proxy).0 == "https")
        .max_age(CookieDuration::seconds(lifetime))
        .finish();
    Ok(HttpResponse::Ok()
        .cookie(cookie)
        .insert_header(("Cache-Control", "no-store"))
        .json(me_json(&new.session)))
}

pub(super) async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    session_for_change(&state, &req).await?;
    if let Some(cookie) = req.cookie(COOKIE) {
        let value = cookie.value().to_owned();
        let st = state.clone();
        blocking(move || st.store.end_web_session(&value)).await?;
    }
    let mut gone = Cookie::build(COOKIE, "").path("/").finish();
    gone.make_removal();
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}

pub(super) async fn me(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &req).await?;
    Ok(no_store().json(me_json(&session)))
}

fn no_store() -> actix_web::HttpResponseBuilder {
    let mut r = HttpResponse::Ok();
    r.insert_header(("Cache-Control", "no-store"));
    r
}

pub(super) async fn timeline(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<TimelineQuery>,
) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &req).await?;
    let st = state.clone();
    let case = session.device.case_id.clone();
    let page = blocking(move || st.store.timeline(&case, &query.into_inner())).await?;
    Ok(no_store().json(page))
}

pub(super) async fn devices(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &req).await?;
    let st = state.clone();
    let case = session.device.case_name.clone();
    let devices = blocking(move || st.store.devices(Some(&case))).await?;
    let list: Vec<Value> = devices
        .iter()
        .map(|d| {
            json!({
                "device_id": d.device_id.to_string(),
                "role": d.role.as_str(),
                "revoked_at": d.revoked_at,
            })
        })
        .collect();
    Ok(no_store().json(list))
}

pub(super) async fn blob(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &req).await?;
    serve_blob(&state, &req, &session.device, &path).await
}

fn parse_report_id(raw: &str) -> Result<ReportId, ApiError> {
    raw.parse()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("bad report id: {e}")))
}

async fn stored_report(
    state: &web::Data<AppState>,
    session: &WebSession,
    id: &ReportId,
) -> Result<StoredReport, ApiError> {
    let (st, case, rid) = (state.clone(), session.device.case_id.clone(), id.clone());
    blocking(move || st.store.report_with_history(&case, &rid))
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "this case has no such report; it may not have synced yet",
            )
        })
}

pub(super) async fn report(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let session = session(&state, &req).await?;
    let id = parse_report_id(&path)?;
    let stored = stored_report(&state, &session, &id).await?;
    Ok(no_store().json(report_json(&stored)?))
}

/// A report for the review page: its fields, heads, history (oldest first,
/// as received) and the fields whose concurrent values Automerge keeps.
fn report_json(stored: &StoredReport) -> Result<Value, ApiError> {
    let doc = Automerge::load(&stored.snapshot)
        .map_err(|e| ApiError::internal("stored document does not load", &e))?;
    let report = read_report(&doc).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("this report's stored document does not read as a report: {e}"),
        )
    })?;
    let history: Vec<Value> = stored
        .changes
        .iter()
        .filter_map(|c| {
            let change = Change::try_from(c.bytes.as_slice()).ok()?;
            let who = attribute(&change, &c.signature);
            Some(json!({
                "hash": change.hash().to_string(),
                "actor": hex::encode(change.actor_id().to_bytes()),
                "device_id": who.device.map(|k| k.device_id().to_string()),
                "via_web_session": who.via_web_session,
                "seq": change.seq(),
                "time": DateTime::from_timestamp_millis(change.timestamp())
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
                "received_at": c.received_at,
                "signature_verified": who.signature_verified,
                "message": change.message(),
                "fields": changed_fields(&doc, &change),
            }))
        })
        .collect();
    let heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    Ok(json!({
        "report": report,
        "creator": stored.creator,
        "heads": heads,
        "objects": edited_maps(&doc),
        "history": history,
        "conflicts": conflicts(&doc),
    }))
}

/// The id (`counter@actor`) of each root map a review edit writes into, for
/// the page's check that a prepared change writes into these and no other.
fn edited_maps(doc: &Automerge) -> serde_json::Map<String, Value> {
    document::review_edit_objects(doc)
        .into_iter()
        .map(|(field, id)| (field.key().to_owned(), json!(id.to_string())))
        .collect()
}

/// The top-level fields a change writes (`place`, `review`, `tags`, …),
/// each once, in key order.
fn changed_fields(doc: &Automerge, change: &Change) -> Vec<String> {
    let fields: std::collections::BTreeSet<String> = document::fields_touched(doc, change)
        .into_iter()
        .map(|touch| touch.field.key().to_owned())
        .collect();
    fields.into_iter().collect()
}

/// Single-valued fields that hold more than one value after concurrent
/// writes: the review page shows every one.
fn conflicts(doc: &Automerge) -> Vec<Value> {
    document::conflicts(doc)
        .into_iter()
        .map(|c| json!({"field": c.field.label(), "values": c.values}))
        .collect()
}

/// An edit the review page asks for.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum WebEdit {
    SetStatus {
        status: String,
        #[serde(default)]
        note: String,
    },
    SetTitle {
        title: String,
    },
    SetPlace {
        name: String,
        lat: Option<f64>,
        lon: Option<f64>,
    },
    SetOccurredAt {
        occurred_at: String,
        #[serde(default)]
        approximate: bool,
    },
    AddTag {
        tag: String,
    },
    RemoveTag {
        tag: String,
    },
}

#[derive(Deserialize)]
struct PrepareBody {
    edits: Vec<WebEdit>,
}

fn unprocessable(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
}

fn to_edits(
    edits: Vec<WebEdit>,
    reviewer: &str,
    now: DateTime<FixedOffset>,
) -> Result<Vec<Edit>, ApiError> {
    if edits.is_empty() {
        return Err(unprocessable("no edits were sent"));
    }
    edits
        .into_iter()
        .map(|e| {
            Ok(match e {
                WebEdit::SetStatus { status, note } => Edit::SetReview {
                    status: status.parse::<ReviewStatus>().map_err(|_| {
                        unprocessable(format!(
                            "status must be unverified, verified or disputed, got {status:?}"
                        ))
                    })?,
                    note,
                    reviewer: reviewer.to_owned(),
                    at: now,
                },
                WebEdit::SetTitle { title } => Edit::SetTitle(title),
                WebEdit::SetPlace { name, lat, lon } => Edit::SetPlace(Place { name, lat, lon }),
                WebEdit::SetOccurredAt {
                    occurred_at,
                    approximate,
                } => Edit::SetOccurredAt {
                    at: DateTime::parse_from_rfc3339(&occurred_at).map_err(|_| {
                        unprocessable(format!(
                            "occurred_at must be an RFC 3339 time with its offset, such as 2016-05-21T10:40:00+06:00, got {occurred_at:?}"
                        ))
                    })?,
                    approximate,
                },
                WebEdit::AddTag { tag } => Edit::AddTag(tag),
                WebEdit::RemoveTag { tag } => Edit::RemoveTag(tag),
            })
        })
        .collect()
}

/// Builds the change for the page to sign. Nothing is stored: the change
/// exists only in the response until the page commits it signed.
pub(super) async fn prepare(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (session, id, PrepareBody { edits }) =
        change_request(&state, &req, &path, payload, "edit request").await?;
    let now = Utc::now().fixed_offset();
    let edits = to_edits(edits, session.device.device_id.as_str(), now)?;
    let stored = stored_report(&state, &session, &id).await?;
    let doc = AutoCommit::load(&stored.snapshot)
        .map_err(|e| ApiError::internal("stored document does not load", &e))?;
    let mut doc = ReportDocument::from_automerge(doc);
    let change = doc
        .prepare_edit(&session.session_key, &edits, now)
        .map_err(|e| unprocessable(format!("the edit was refused: {e}")))?
        .ok_or_else(|| unprocessable("the edits change nothing"))?;
    Ok(no_store().json(json!({
        "change": STANDARD.encode(change.raw_bytes()),
        "hash": change.hash().to_string(),
    })))
}

#[derive(Deserialize)]
struct CommitBody {
    change: String,
    sig: String,
}

/// Applies a change the page signed, as the session's device, through the
/// same sync path and policy as any device's change.
pub(super) async fn commit(
    state: web::Data<AppState>,
    metrics: web::Data<Metrics>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (session, id, CommitBody { change, sig }) =
        change_request(&state, &req, &path, payload, "commit request").await?;
    let bytes = STANDARD
        .decode(change.as_bytes())
        .map_err(|_| unprocessable("`change` is not base64"))?;
    let session_sig = STANDARD
        .decode(sig.as_bytes())
        .ok()
        .and_then(|s| Signature::from_bytes(&s).ok())
        .ok_or_else(|| unprocessable("`sig` must be a base64 Ed25519 signature (64 bytes)"))?;
    let signed = SignedChange {
        bytes,
        signature: delegated_signature(&session.certificate, &session_sig),
    };
    let limits = ServerLimits {
        max_response_bytes: state.config.max_response_bytes,
        ..ServerLimits::default()
    };
    let (st, case) = (state.clone(), session.device.case_id.clone());
    let (device, session_key, rid) = (session.device.clone(), session.session_key, id.clone());
    // Verifying the change and loading the report are work the browser's
    // bytes control: off the async workers, and before the store's write
    // transaction.
    let round = blocking(move || {
        let verified = signed
            .verify()
            .map_err(|e| unprocessable(format!("the signed change does not verify: {e}")))?;
        let stored = st.store.report_with_history(&case, &rid)?.ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "this case has no such report; it may not have synced yet",
            )
        })?;
        let doc = Automerge::load(&stored.snapshot)
            .map_err(|e| ApiError::internal("stored document does not load", &e))?;
        // Another tab of the same session may have committed a different
        // change with this sequence number since this one was prepared.
        let clash = doc.get_changes(&[]).iter().any(|c| {
            c.actor_id() == verified.change.actor_id()
                && c.seq() == verified.change.seq()
                && c.hash() != verified.change.hash()
        });
        if clash {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "the report changed in this session meanwhile; prepare the edit again",
            ));
        }
        let request = VerifiedRequest {
            // Past any feed position: the answer carries no other reports.
            cursor: u64::MAX,
            docs: vec![VerifiedOffer {
                id: rid,
                base_heads: doc.get_heads(),
                changes: vec![verified],
            }],
        };
        // This session, live (its cookie was just checked), is the one
        // route by which a change under its certificate may arrive new.
        st.store
            .sync_verified(&device, request, limits, Some(&session_key))
            .map_err(|e| match e {
                SyncStoreError::Sync(SyncError::Revoked) => ended(),
                SyncStoreError::Sync(e @ SyncError::InvalidChange { .. })
                | SyncStoreError::Sync(e @ SyncError::UnknownAuthor { .. }) => {
                    unprocessable(e.to_string())
                }
                SyncStoreError::Sync(SyncError::Store(e)) | SyncStoreError::Store(e) => e.into(),
            })
    })
    .await?;
    metrics.changes_stored(round.changes_stored);
    if let Some(refused) = round.response.docs.iter().flat_map(|d| &d.refused).next() {
        return Err(unprocessable(format!(
            "the server refused the change: {}",
            refused.message
        )));
    }
    tracing::info!(device = %session.device.device_id, report = %id, "review change committed");
    let stored = stored_report(&state, &session, &id).await?;
    Ok(no_store().json(report_json(&stored)?))
}
