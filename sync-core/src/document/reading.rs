//! Reading the typed [`Report`] view out of a document.

use std::collections::BTreeSet;
use std::str::FromStr;

use automerge::{ObjId, ObjType, ReadDoc, ScalarValue, Value, ROOT};
use chrono::{DateTime, FixedOffset};

use super::errors::ViewError;
use super::layout::*;
use crate::ids::{BlobId, CaseId, DeviceId, IdError, ReportId};
use crate::model::*;

/// Reads the typed view of any Automerge document (the device's
/// `AutoCommit` or the server's `Automerge`). Missing fields get defaults,
/// except the identifiers (`id`, `case`, `created_by`, an attachment's
/// `blob`), which have none: absent or malformed, they are an error naming
/// the field, like a field of the wrong type. Unknown fields are listed and
/// left alone.
pub fn read_report(doc: &impl ReadDoc) -> Result<Report, ViewError> {
    let mut unknown_fields: Vec<String> = doc
        .keys(ROOT)
        .filter(|k| Field::from_key(k).is_none())
        .collect();
    unknown_fields.sort();
    let place = match get_object(doc, &ROOT, PLACE, "place", ObjType::Map)? {
        None => Place::default(),
        Some(obj) => Place {
            name: get_str(doc, &obj, NAME, "place.name")?.unwrap_or_default(),
            lat: get_f64(doc, &obj, LAT, "place.lat")?,
            lon: get_f64(doc, &obj, LON, "place.lon")?,
        },
    };
    let mut people = Vec::new();
    if let Some(list) = get_object(doc, &ROOT, PEOPLE, "people", ObjType::List)? {
        for i in 0..doc.length(&list) {
            let field = format!("people[{i}]");
            let Some(obj) = get_object(doc, &list, i, &field, ObjType::Map)? else {
                continue;
            };
            let role_field = format!("{field}.role");
            let role = match get_str(doc, &obj, ROLE, &role_field)? {
                None => Role::Other,
                Some(text) => text.parse().map_err(|reason| ViewError::InvalidValue {
                    field: role_field,
                    reason,
                })?,
            };
            people.push(Person {
                name: get_str(doc, &obj, NAME, &format!("{field}.name"))?.unwrap_or_default(),
                role,
                note: get_str(doc, &obj, NOTE, &format!("{field}.note"))?.unwrap_or_default(),
            });
        }
    }
    let mut tags = BTreeSet::new();
    if let Some(obj) = get_object(doc, &ROOT, TAGS, "tags", ObjType::Map)? {
        tags.extend(doc.keys(&obj));
    }
    let mut timeline = Vec::new();
    if let Some(list) = get_object(doc, &ROOT, TIMELINE, "timeline", ObjType::List)? {
        for i in 0..doc.length(&list) {
            let field = format!("timeline[{i}]");
            let Some(obj) = get_object(doc, &list, i, &field, ObjType::Map)? else {
                continue;
            };
            let at_field = format!("{field}.at");
            let Some(at) = get_time(doc, &obj, AT, &at_field)? else {
                return Err(ViewError::InvalidValue {
                    field: at_field,
                    reason: "a timeline entry needs a time".into(),
                });
            };
            timeline.push(TimelineEntry {
                at,
                text: get_str(doc, &obj, TEXT, &format!("{field}.text"))?.unwrap_or_default(),
                approximate: get_bool(doc, &obj, APPROXIMATE, &format!("{field}.approximate"))?
                    .unwrap_or(false),
            });
        }
    }
    let review = match get_object(doc, &ROOT, REVIEW, "review", ObjType::Map)? {
        None => Review::default(),
        Some(obj) => Review {
            status: match get_str(doc, &obj, STATUS, "review.status")? {
                None => ReviewStatus::Unverified,
                Some(text) => text.parse().map_err(|reason| ViewError::InvalidValue {
                    field: "review.status".into(),
                    reason,
                })?,
            },
            reviewer: get_str(doc, &obj, REVIEWER, "review.reviewer")?,
            note: get_str(doc, &obj, NOTE, "review.note")?.unwrap_or_default(),
            reviewed_at: get_time(doc, &obj, REVIEWED_AT, "review.reviewed_at")?,
        },
    };
    let mut attachments = Vec::new();
    if let Some(list) = get_object(doc, &ROOT, ATTACHMENTS, "attachments", ObjType::List)? {
        for i in 0..doc.length(&list) {
            let field = format!("attachments[{i}]");
            let Some(obj) = get_object(doc, &list, i, &field, ObjType::Map)? else {
                continue;
            };
            attachments.push(AttachmentRef {
                id: get_str(doc, &obj, ID, &format!("{field}.id"))?.unwrap_or_default(),
                blob: get_id::<BlobId>(doc, &obj, BLOB, &format!("{field}.blob"))?,
                size: get_u64(doc, &obj, SIZE, &format!("{field}.size"))?.unwrap_or(0),
                header: get_str(doc, &obj, HEADER, &format!("{field}.header"))?.unwrap_or_default(),
                key_epoch: get_u64(doc, &obj, KEY_EPOCH, &format!("{field}.key_epoch"))?
                    .unwrap_or(0),
            });
        }
    }
    let description = match doc.get(ROOT, DESCRIPTION).ok().flatten() {
        None => String::new(),
        Some((Value::Object(ObjType::Text), obj)) => {
            doc.text(&obj).map_err(|e| ViewError::InvalidValue {
                field: "description".into(),
                reason: e.to_string(),
            })?
        }
        // A plain string is what an older or simpler writer would put.
        Some((Value::Scalar(s), _)) if matches!(s.as_ref(), ScalarValue::Str(_)) => {
            s.as_str().unwrap_or_default().to_owned()
        }
        Some((other, _)) => {
            return Err(ViewError::WrongType {
                field: "description".into(),
                expected: "text",
                found: describe(&other),
            })
        }
    };
    // Read where they always were, so a field of the wrong type is still
    // the error a document with several faults reports first; required
    // only once every other field has read.
    let id = get_str(doc, &ROOT, ID, "id")?;
    let case = get_str(doc, &ROOT, CASE, "case")?;
    let created_by = get_str(doc, &ROOT, CREATED_BY, "created_by")?;
    let created_at = get_time(doc, &ROOT, CREATED_AT, "created_at")?;
    let schema_version =
        get_u64(doc, &ROOT, SCHEMA_VERSION_KEY, "schema_version")?.unwrap_or(SCHEMA_VERSION);
    let occurred_at = get_time(doc, &ROOT, OCCURRED_AT, "occurred_at")?;
    let approximate = get_bool(doc, &ROOT, APPROXIMATE, "approximate")?.unwrap_or(false);
    let title = get_str(doc, &ROOT, TITLE, "title")?.unwrap_or_default();
    Ok(Report {
        id: required_id::<ReportId>(id, "id")?,
        case: required_id::<CaseId>(case, "case")?,
        created_by: required_id::<DeviceId>(created_by, "created_by")?,
        created_at,
        schema_version,
        occurred_at,
        approximate,
        place,
        title,
        description,
        people,
        tags,
        timeline,
        review,
        attachments,
        unknown_fields,
    })
}

/// An identifier the document must hold: absent or malformed, the report
/// cannot be read.
fn required_id<T: FromStr<Err = IdError>>(
    text: Option<String>,
    field: &str,
) -> Result<T, ViewError> {
    let text = text.ok_or_else(|| ViewError::Missing {
        field: field.into(),
    })?;
    text.parse().map_err(|source| ViewError::InvalidId {
        field: field.into(),
        source,
    })
}

fn get_id<T: FromStr<Err = IdError>>(
    doc: &impl ReadDoc,
    obj: &ObjId,
    key: &str,
    field: &str,
) -> Result<T, ViewError> {
    required_id(get_str(doc, obj, key, field)?, field)
}

pub(super) fn get_object<P: Into<automerge::Prop>>(
    doc: &impl ReadDoc,
    parent: &ObjId,
    prop: P,
    field: &str,
    ty: ObjType,
) -> Result<Option<ObjId>, ViewError> {
    match doc.get(parent, prop).ok().flatten() {
        None => Ok(None),
        Some((Value::Object(found), obj)) if same_kind(found, ty) => Ok(Some(obj)),
        Some((other, _)) => Err(ViewError::WrongType {
            field: field.into(),
            expected: obj_name(ty),
            found: describe(&other),
        }),
    }
}

fn same_kind(a: ObjType, b: ObjType) -> bool {
    matches!(
        (a, b),
        (ObjType::Map | ObjType::Table, ObjType::Map | ObjType::Table)
            | (ObjType::List, ObjType::List)
            | (ObjType::Text, ObjType::Text)
    )
}

fn obj_name(ty: ObjType) -> &'static str {
    match ty {
        ObjType::Map | ObjType::Table => "a map",
        ObjType::List => "a list",
        ObjType::Text => "text",
    }
}

fn describe(value: &Value<'_>) -> String {
    match value {
        Value::Object(ty) => obj_name(*ty).to_owned(),
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Bytes(_) => "bytes".into(),
            ScalarValue::Str(_) => "a string".into(),
            ScalarValue::Int(_) | ScalarValue::Uint(_) | ScalarValue::F64(_) => "a number".into(),
            ScalarValue::Counter(_) => "a counter".into(),
            ScalarValue::Timestamp(_) => "a timestamp".into(),
            ScalarValue::Boolean(_) => "a boolean".into(),
            ScalarValue::Unknown { .. } => "a value of unknown type".into(),
            ScalarValue::Null => "null".into(),
        },
    }
}

fn get_scalar(
    doc: &impl ReadDoc,
    obj: &ObjId,
    key: &str,
) -> Option<Result<ScalarValue, Value<'static>>> {
    match doc.get(obj, key).ok().flatten()? {
        (Value::Scalar(s), _) if matches!(s.as_ref(), ScalarValue::Null) => None,
        (Value::Scalar(s), _) => Some(Ok(s.into_owned())),
        (Value::Object(ty), _) => Some(Err(Value::Object(ty))),
    }
}

fn wrong(field: &str, expected: &'static str, found: Value<'_>) -> ViewError {
    ViewError::WrongType {
        field: field.into(),
        expected,
        found: describe(&found),
    }
}

pub(super) fn get_str(
    doc: &impl ReadDoc,
    obj: &ObjId,
    key: &str,
    field: &str,
) -> Result<Option<String>, ViewError> {
    match get_scalar(doc, obj, key) {
        None => Ok(None),
        Some(Ok(ScalarValue::Str(s))) => Ok(Some(s.to_string())),
        Some(Ok(other)) => Err(wrong(
            field,
            "a string",
            Value::Scalar(std::borrow::Cow::Owned(other)),
        )),
        Some(Err(found)) => Err(wrong(field, "a string", found)),
    }
}

pub(super) fn get_bool(
    doc: &impl ReadDoc,
    obj: &ObjId,
    key: &str,
    field: &str,
) -> Result<Option<bool>, ViewError> {
    match get_scalar(doc, obj, key) {
        None => Ok(None),
        Some(Ok(ScalarValue::Boolean(b))) => Ok(Some(b)),
        Some(Ok(other)) => Err(wrong(
            field,
            "a boolean",
            Value::Scalar(std::borrow::Cow::Owned(other)),
        )),
        Some(Err(found)) => Err(wrong(field, "a boolean", found)),
    }
}

pub(super) fn get_f64(
    doc: &impl ReadDoc,
    obj: &ObjId,
    key: &str,
    field: &str,
) -> Result<Option<f64>, ViewError> {
    match get_scalar(doc, obj, key) {
        None => Ok(None),
        Some(Ok(ScalarValue::F64(v))) => Ok(Some(v)),
        Some(Ok(ScalarValue::Int(v))) => Ok(Some(v as f64)),
        Some(Ok(ScalarValue::Uint(v))) => Ok(Some(v as f64)),
        Some(Ok(other)) => Err(wrong(
            field,
            "a number",
            Value::Scalar(std::borrow::Cow::Owned(other)),
        )),
        Some(Err(found)) => Err(wrong(field, "a number", found)),
    }
}

pub(super) fn get_u64(
    doc: &impl ReadDoc,
    obj: &ObjId,
    key: &str,
    field: &str,
) -> Result<Option<u64>, ViewError> {
    match get_scalar(doc, obj, key) {
        None => Ok(None),
        Some(Ok(ScalarValue::Uint(v))) => Ok(Some(v)),
        Some(Ok(ScalarValue::Int(v))) if v >= 0 => Ok(Some(v as u64)),
        Some(Ok(other)) => Err(wrong(
            field,
            "a whole number",
            Value::Scalar(std::borrow::Cow::Owned(other)),
        )),
        Some(Err(found)) => Err(wrong(field, "a whole number", found)),
    }
}

pub(super) fn get_time(
    doc: &impl ReadDoc,
    obj: &ObjId,
    key: &str,
    field: &str,
) -> Result<Option<DateTime<FixedOffset>>, ViewError> {
    let Some(text) = get_str(doc, obj, key, field)? else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(&text)
        .map(Some)
        .map_err(|e| ViewError::InvalidValue {
            field: field.into(),
            reason: format!("{text:?} is not an RFC 3339 time with offset: {e}"),
        })
}
