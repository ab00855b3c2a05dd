//! GeoJSON (RFC 7946) for maps: a `FeatureCollection` with one `Point`
//! feature per report that has both coordinates, positions `[longitude,
//! latitude]` in WGS 84 (RFC 7946 has no `crs` member; none is written).
//! Each feature has the report id as its `id` and `properties` `{id,
//! title, occurred_at, approximate, place, status, tags, description}`.
//!
//! Reports without coordinates are left out, and so are coordinates no
//! map can show (not finite, latitude outside ±90, longitude outside
//! ±180); [`Written`] counts both so the caller can say so. Texts are data
//! here, not markup: a map that shows them as HTML must escape them.

use std::io::Write;

use serde::Serialize;

use super::{Export, ExportError};
use crate::document::rfc3339;

/// What [`write`] wrote and left out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub features: usize,
    /// Reports lacking latitude or longitude.
    pub without_coordinates: usize,
    /// Reports whose coordinates are not a position on Earth.
    pub invalid_coordinates: usize,
}

#[derive(Serialize)]
struct FeatureCollection<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    features: Vec<Feature<'a>>,
}

#[derive(Serialize)]
struct Feature<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    geometry: Point,
    properties: Properties<'a>,
}

#[derive(Serialize)]
struct Point {
    #[serde(rename = "type")]
    kind: &'static str,
    coordinates: [f64; 2],
}

#[derive(Serialize)]
struct Properties<'a> {
    id: &'a str,
    title: &'a str,
    occurred_at: Option<String>,
    approximate: bool,
    place: &'a str,
    status: &'static str,
    tags: Vec<&'a str>,
    description: &'a str,
}

/// Writes the FeatureCollection, pretty-printed, ending with a newline.
pub fn write<W: Write>(mut out: W, export: &Export) -> Result<Written, ExportError> {
    let mut written = Written::default();
    let mut features = Vec::new();
    for exported in &export.reports {
        let r = &exported.report;
        let (Some(lat), Some(lon)) = (r.place.lat, r.place.lon) else {
            written.without_coordinates += 1;
            continue;
        };
        if !(lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0) {
            written.invalid_coordinates += 1;
            continue;
        }
        features.push(Feature {
            kind: "Feature",
            id: r.id.as_str(),
            geometry: Point {
                kind: "Point",
                coordinates: [lon, lat],
            },
            properties: Properties {
                id: r.id.as_str(),
                title: &r.title,
                occurred_at: r.occurred_at.as_ref().map(rfc3339),
                approximate: r.approximate,
                place: &r.place.name,
                status: r.review.status.as_str(),
                tags: r.tags.iter().map(String::as_str).collect(),
                description: &r.description,
            },
        });
    }
    written.features = features.len();
    let collection = FeatureCollection {
        kind: "FeatureCollection",
        features,
    };
    serde_json::to_writer_pretty(&mut out, &collection)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::export::tests::{hostile, sample, HOSTILE_TITLE};

    fn geojson(export: &Export) -> (Value, Written) {
        let mut out = Vec::new();
        let written = write(&mut out, export).unwrap();
        (serde_json::from_slice(&out).unwrap(), written)
    }

    /// The parts of RFC 7946 an export can get wrong.
    fn check_rfc7946(doc: &Value) {
        let top = doc.as_object().unwrap();
        assert_eq!(top["type"], "FeatureCollection");
        assert!(!top.contains_key("crs"), "RFC 7946 removed crs");
        for feature in top["features"].as_array().unwrap() {
            let f = feature.as_object().unwrap();
            assert_eq!(f["type"], "Feature");
            assert!(!f.contains_key("crs"));
            assert!(f["id"].is_string() || f["id"].is_number());
            assert!(f["properties"].is_object(), "properties must be an object");
            let g = f["geometry"].as_object().unwrap();
            assert_eq!(g["type"], "Point");
            let position = g["coordinates"].as_array().unwrap();
            assert_eq!(position.len(), 2, "a position without altitude");
            let lon = position[0].as_f64().unwrap();
            let lat = position[1].as_f64().unwrap();
            assert!((-180.0..=180.0).contains(&lon), "longitude first");
            assert!((-90.0..=90.0).contains(&lat));
        }
    }

    #[test]
    fn reports_with_coordinates_become_points_longitude_first() {
        let (doc, written) = geojson(&sample());
        check_rfc7946(&doc);
        assert_eq!(
            written,
            Written {
                features: 2,
                without_coordinates: 1,
                invalid_coordinates: 0
            }
        );
        let features = doc["features"].as_array().unwrap();
        assert_eq!(features.len(), 2);
        assert_eq!(
            features[0]["geometry"]["coordinates"],
            serde_json::json!([76.95, 43.25])
        );
        assert_eq!(
            features[1]["geometry"]["coordinates"],
            serde_json::json!([18.4, -33.9])
        );
        let p = &features[0]["properties"];
        assert_eq!(p["id"], "11111111111111111111111111111111");
        assert_eq!(p["title"], "Arrest at the bus stop");
        assert_eq!(p["occurred_at"], "2016-05-21T10:40:00+06:00");
        assert_eq!(p["approximate"], true);
        assert_eq!(p["place"], "Bus stop, Abay avenue");
        assert_eq!(p["status"], "verified");
        assert_eq!(p["tags"], serde_json::json!(["arrest", "police"]));
        assert_eq!(
            p["description"],
            "Aleksey was arrested.\nTwo officers took him away."
        );
        assert_eq!(features[0]["id"], p["id"]);
    }

    #[test]
    fn impossible_coordinates_are_left_out_and_counted() {
        let mut export = sample();
        export.reports[0].report.place.lat = Some(91.0);
        export.reports[2].report.place.lon = Some(f64::NAN);
        let (doc, written) = geojson(&export);
        check_rfc7946(&doc);
        assert_eq!(written.features, 0);
        assert_eq!(written.invalid_coordinates, 2);
        assert_eq!(written.without_coordinates, 1);
        assert_eq!(doc["features"], serde_json::json!([]));
    }

    #[test]
    fn texts_are_kept_as_data_and_output_is_deterministic() {
        let (doc, _) = geojson(&hostile());
        check_rfc7946(&doc);
        let p = &doc["features"][0]["properties"];
        assert_eq!(p["title"], HOSTILE_TITLE);
        assert!(p["description"].as_str().unwrap().contains("Алексей"));
        let bytes = |e: &Export| {
            let mut out = Vec::new();
            write(&mut out, e).unwrap();
            out
        };
        assert_eq!(bytes(&sample()), bytes(&sample()));
    }
}
