//! The checks an edit makes before it touches a document. They are public so
//! that code building a report from outside (the importers) refuses a bad
//! value with the same rule and the same message, before creating anything.

use super::errors::EditError;
use super::layout::NewReport;
use crate::model::{
    Person, Place, Report, TimelineEntry, MAX_DESCRIPTION_BYTES, MAX_FIELD_BYTES, MAX_TITLE_BYTES,
};

/// Every field of a report passes the check an edit of it makes: what the
/// server requires of a report after each change it accepts, so that no
/// device can store a report that others cannot read or that breaks limits
/// every honest client keeps.
pub fn validate_report(report: &Report) -> Result<(), EditError> {
    validate_title(&report.title)?;
    validate_description(&report.description)?;
    validate_place(&report.place)?;
    for person in &report.people {
        validate_person(person)?;
    }
    for tag in &report.tags {
        validate_tag(tag)?;
    }
    for entry in &report.timeline {
        validate_timeline_entry(entry)?;
    }
    validate_text("a review note", &report.review.note, MAX_FIELD_BYTES)
}

/// A title fits in [`MAX_TITLE_BYTES`].
pub fn validate_title(title: &str) -> Result<(), EditError> {
    validate_text("title", title, MAX_TITLE_BYTES)
}

/// A description fits in [`MAX_DESCRIPTION_BYTES`].
pub fn validate_description(text: &str) -> Result<(), EditError> {
    validate_text("description", text, MAX_DESCRIPTION_BYTES)
}

/// A place's name fits; its coordinates are in range and come as a pair.
pub fn validate_place(place: &Place) -> Result<(), EditError> {
    validate_text("place name", &place.name, MAX_FIELD_BYTES)?;
    match (place.lat, place.lon) {
        (Some(lat), _) if !(-90.0..=90.0).contains(&lat) => Err(EditError::Latitude(lat)),
        (_, Some(lon)) if !(-180.0..=180.0).contains(&lon) => Err(EditError::Longitude(lon)),
        (Some(_), None) | (None, Some(_)) => Err(EditError::HalfCoordinate),
        _ => Ok(()),
    }
}

/// A person has a name; name and note fit.
pub fn validate_person(person: &Person) -> Result<(), EditError> {
    if person.name.trim().is_empty() {
        return Err(EditError::Empty("a person's name"));
    }
    validate_text("a person's name", &person.name, MAX_FIELD_BYTES)?;
    validate_text("a person's note", &person.note, MAX_FIELD_BYTES)
}

/// A tag is not blank once trimmed, and fits.
pub fn validate_tag(tag: &str) -> Result<(), EditError> {
    normalize_tag(tag).map(drop)
}

/// A timeline entry has text, and it fits.
pub fn validate_timeline_entry(entry: &TimelineEntry) -> Result<(), EditError> {
    if entry.text.trim().is_empty() {
        return Err(EditError::Empty("a timeline entry's text"));
    }
    validate_text("a timeline entry's text", &entry.text, MAX_FIELD_BYTES)
}

pub(super) fn validate_text(field: &'static str, text: &str, max: usize) -> Result<(), EditError> {
    if text.len() > max {
        return Err(EditError::TooLong {
            field,
            len: text.len(),
            max,
        });
    }
    Ok(())
}

pub(super) fn normalize_tag(tag: &str) -> Result<String, EditError> {
    let tag = tag.trim();
    if tag.is_empty() {
        return Err(EditError::Empty("a tag"));
    }
    validate_text("a tag", tag, MAX_FIELD_BYTES)?;
    Ok(tag.to_owned())
}

/// Everything [`super::ReportDocument::create`] checks of a new report, in
/// the order it always has (so the first error is the same on both paths);
/// returns the tags as they are stored.
pub(super) fn validate_new(new: &NewReport) -> Result<Vec<String>, EditError> {
    validate_title(&new.title)?;
    validate_place(&new.place)?;
    validate_description(&new.description)?;
    for person in &new.people {
        validate_person(person)?;
    }
    let tags = new
        .tags
        .iter()
        .map(|tag| normalize_tag(tag))
        .collect::<Result<Vec<_>, _>>()?;
    for entry in &new.timeline {
        validate_timeline_entry(entry)?;
    }
    Ok(tags)
}
