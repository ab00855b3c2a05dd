use std::time::Instant;

use super::*;
use crate::import::{parse as parse_file, parse_as, Format, ParsedFile};
use crate::model::Role;

fn options(file: &str) -> ImportOptions {
    ImportOptions::almaty(file)
}

fn check(csv: &str) -> ParsedFile {
    check_with(csv, options("reports.csv"))
}

fn check_with(csv: &str, options: ImportOptions) -> ParsedFile {
    parse_as(csv.as_bytes(), &options, Format::Csv)
}

fn refuse(csv: &str, options: ImportOptions) -> ImportError {
    parse_file(csv.as_bytes(), &options).unwrap_err()
}

fn keys(parsed: &ParsedFile) -> Vec<&str> {
    parsed
        .reports
        .iter()
        .map(|r| r.source_key.as_str())
        .collect()
}

#[test]
fn a_spreadsheet_with_everyday_column_names_imports_every_row() {
    let parsed = check(
        " Subject ,Date,Time,Location,Lat,Lng,Narrative,Details,Tags,People\n\
         Arrest at the bus stop,21.05.2016,10:40 am,Almaty,43.2567,\"76,9286\",Taken at the stop.,Two officers.,arrest; rally,Aleksey Nigay (detainee); Tulegen Shakirov:officer\n\
         Rally dispersed,May 21 2016,,Republic Square,,,,,,\n",
    );
    assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
    assert_eq!(keys(&parsed), ["row:1", "row:2"]);
    let r = &parsed.reports[0];
    assert_eq!(r.line, 2);
    assert_eq!(r.title, "Arrest at the bus stop");
    assert_eq!(r.occurred_at.to_rfc3339(), "2016-05-21T10:40:00+06:00");
    assert!(!r.approximate);
    assert_eq!(r.place.name, "Almaty");
    assert_eq!((r.place.lat, r.place.lon), (Some(43.2567), Some(76.9286)));
    assert_eq!(r.description, "Taken at the stop.\n\nTwo officers.");
    assert_eq!(r.tags, ["arrest", "rally"]);
    assert_eq!(r.people.len(), 2);
    assert_eq!(
        (r.people[0].name.as_str(), r.people[0].role),
        ("Aleksey Nigay", Role::Detainee)
    );
    assert_eq!(
        (r.people[1].name.as_str(), r.people[1].role),
        ("Tulegen Shakirov", Role::Officer)
    );
    let r = &parsed.reports[1];
    assert_eq!(r.line, 3);
    assert_eq!(r.occurred_at.to_rfc3339(), "2016-05-21T00:00:00+06:00");
    assert!(r.approximate, "a date without a time is approximate");
}

#[test]
fn a_bad_date_refuses_its_row_with_line_and_reason_and_the_other_rows_import() {
    let parsed = check(
        "title,occurred_at\n\
         first,2016-05-21T10:40:00+06:00\n\
         second,yesterday\n\
         third,21/05/2016\n\
         fourth,31.02.2016\n\
         fifth,22.05.2016 09:00\n",
    );
    assert_eq!(keys(&parsed), ["row:1", "row:5"]);
    let lines: Vec<usize> = parsed.refused.iter().map(|r| r.line).collect();
    assert_eq!(lines, [3, 4, 5]);
    let reasons: Vec<&str> = parsed.refused.iter().map(|r| r.reason.as_str()).collect();
    assert!(
        reasons[0].contains("column \"occurred_at\"")
            && reasons[0].contains("\"yesterday\" is not a date"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[0].contains("write it like 2016-05-21"),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[1].contains("month first") && reasons[1].contains("2016-05-21"),
        "{}",
        reasons[1]
    );
    assert!(reasons[2].contains("not a date"), "{}", reasons[2]);
}

#[test]
fn rows_with_bad_values_are_refused_each_saying_what_to_fix() {
    let parsed = check(
        "title,date,latitude,longitude,approximate,people,tags\n\
         ok,2016-05-21,43.2,76.9,no,,\n\
         ,2016-05-21,,,,,\n\
         north of the pole,2016-05-21,91.5,76.9,,,\n\
         half a place,2016-05-21,43.2,,,,\n\
         not a number,2016-05-21,forty,76.9,,,\n\
         unsure,2016-05-21,,,maybe,,\n\
         nameless person,2016-05-21,,,,(officer),\n",
    );
    assert_eq!(keys(&parsed), ["row:1"]);
    let refused: Vec<(usize, &str)> = parsed
        .refused
        .iter()
        .map(|r| (r.line, r.reason.as_str()))
        .collect();
    assert_eq!(refused.len(), 6, "{refused:?}");
    assert_eq!(refused[0].0, 3);
    assert!(refused[0].1.contains("missing title"));
    assert!(
        refused[1].1.contains("latitude 91.5 is outside -90..=90"),
        "{}",
        refused[1].1
    );
    assert!(
        refused[2].1.contains("give both or neither"),
        "{}",
        refused[2].1
    );
    assert!(
        refused[3].1.contains("\"forty\" is not a number"),
        "{}",
        refused[3].1
    );
    assert!(
        refused[4].1.contains("\"maybe\" is not yes or no"),
        "{}",
        refused[4].1
    );
    assert!(
        refused[5].1.contains("a person's name must not be empty"),
        "{}",
        refused[5].1
    );
}

#[test]
fn a_naive_time_without_a_timezone_refuses_the_row_asking_for_one() {
    let parsed = check_with(
        "title,date\nfirst,21.05.2016 10:40\nsecond,2016-05-21T10:40:00+06:00\n",
        ImportOptions::new("reports.csv"),
    );
    assert_eq!(keys(&parsed), ["row:2"]);
    assert_eq!(parsed.refused[0].line, 2);
    let reason = &parsed.refused[0].reason;
    assert!(
        reason.contains("naive time") && reason.contains("give --timezone"),
        "{reason}"
    );
}

#[test]
fn an_unknown_column_refuses_the_file_naming_it_and_the_known_fields() {
    let err = refuse(
        "title,date,Officer badge,mood\nx,2016-05-21,123,calm\n",
        options("reports.csv"),
    );
    assert_eq!(
        err,
        ImportError::UnknownColumns {
            file: "reports.csv".into(),
            columns: vec!["Officer badge".into(), "mood".into()],
            known: known_fields(),
        }
    );
    let message = err.to_string();
    assert!(message.contains("\"Officer badge\""), "{message}");
    assert!(
        message.contains("title, occurred_at, date, time, place"),
        "{message}"
    );
    assert!(message.contains("--map COLUMN=ignore"), "{message}");
}

#[test]
fn map_names_unknown_columns_overrides_known_ones_and_ignores_others() {
    let csv = "Event summary,date,Officer badge,title\nArrest,2016-05-21,123,internal note\n";
    let mut opts = options("reports.csv");
    opts.map = vec![
        ("event summary".into(), "title".into()),
        ("Officer badge".into(), "ignore".into()),
        ("title".into(), "description".into()),
    ];
    let parsed = check_with(csv, opts);
    let r = &parsed.reports[0];
    assert_eq!(r.title, "Arrest");
    assert_eq!(r.description, "internal note");

    let mut bad = options("reports.csv");
    bad.map = vec![("Officer badge".into(), "badge".into())];
    let err = refuse(csv, bad).to_string();
    assert!(
        err.contains("--map Officer badge=badge") && err.contains("unknown field \"badge\""),
        "{err}"
    );
    let mut missing = options("reports.csv");
    missing.map = vec![("mood".into(), "ignore".into())];
    let err = refuse(csv, missing).to_string();
    assert!(
        err.contains("no column \"mood\"") && err.contains("\"Event summary\""),
        "{err}"
    );
}

#[test]
fn quoted_fields_with_new_lines_keep_every_line_number_right() {
    let csv = "title,date,description\r\n\
               \"Two\r\nline title\",2016-05-21,\"first\r\nsecond\r\nthird\"\r\n\
               bad date,someday,plain\r\n\
               \"quoted, with comma\",2016-05-22,\"say \"\"hi\"\"\"\r\n\
               \r\n\
               after a blank line,nonsense,x\r\n";
    let parsed = check(csv);
    let lines: Vec<(usize, &str)> = parsed
        .reports
        .iter()
        .map(|r| (r.line, r.title.as_str()))
        .collect();
    assert_eq!(lines, [(2, "Two\r\nline title"), (7, "quoted, with comma")]);
    assert_eq!(parsed.reports[0].description, "first\r\nsecond\r\nthird");
    assert_eq!(parsed.reports[1].description, "say \"hi\"");
    let refused: Vec<usize> = parsed.refused.iter().map(|r| r.line).collect();
    assert_eq!(refused, [6, 9]);
    // Row numbers count data rows, so keys do not depend on line breaks.
    assert_eq!(keys(&parsed), ["row:1", "row:3"]);
}

/// ODK Central's CSV export: SubmissionDate first, group paths joined with
/// "-", a geopoint as four columns, a select-multiple as the answer plus a
/// column per choice, then KEY and Central's metadata columns.
const ODK_CENTRAL: &str = "SubmissionDate,start,end,today,deviceid,incident-title,incident-description,incident-when,location-Latitude,location-Longitude,location-Altitude,location-Accuracy,photo,tags,tags/arrest,tags/violence,meta-instanceID,meta-instanceName,KEY,SubmitterID,SubmitterName,AttachmentsPresent,AttachmentsExpected,Status,ReviewState,DeviceID,Edits,FormVersion
2016-05-21T05:02:11.123Z,2016-05-21T10:50:00.000+06:00,2016-05-21T10:58:00.000+06:00,2016-05-21,collect:Xk3bq,Arrest at the bus stop,\"Taken at the stop,
by two officers.\",2016-05-21T10:40:00.000+06:00,43.2567,76.9286,850,4.5,1463806800123.jpg,arrest violence,1,1,uuid:8a1b0c2d-0000-4000-8000-000000000001,Arrest,uuid:8a1b0c2d-0000-4000-8000-000000000001,5,Reporter One,1,1,,approved,collect:Xk3bq,0,2016052101
2016-05-21T06:10:00.000Z,2016-05-21T11:55:00.000+06:00,2016-05-21T12:01:00.000+06:00,2016-05-21,collect:Xk3bq,Square closed,,,,,,,,rally,0,0,uuid:8a1b0c2d-0000-4000-8000-000000000003,Square,uuid:8a1b0c2d-0000-4000-8000-000000000002,5,Reporter One,0,0,,,collect:Xk3bq,1,2016052101
";

#[test]
fn an_odk_central_export_maps_without_any_map() {
    let parsed = check_with(ODK_CENTRAL, options("incident.csv"));
    assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
    assert_eq!(parsed.reports.len(), 2);
    let r = &parsed.reports[0];
    // KEY: the submission's first instanceID, the same after edits.
    assert_eq!(r.source_key, "8a1b0c2d-0000-4000-8000-000000000001");
    assert_eq!(r.line, 2);
    assert_eq!(r.title, "Arrest at the bus stop");
    assert_eq!(r.description, "Taken at the stop,\nby two officers.");
    assert_eq!(r.occurred_at.to_rfc3339(), "2016-05-21T10:40:00+06:00");
    assert!(!r.approximate);
    assert_eq!((r.place.lat, r.place.lon), (Some(43.2567), Some(76.9286)));
    assert_eq!(r.tags, ["arrest", "violence"]);
    assert_eq!(r.attachment_names, ["1463806800123.jpg"]);
    let r = &parsed.reports[1];
    // An edited submission: KEY stays, meta-instanceID moved on.
    assert_eq!(r.source_key, "8a1b0c2d-0000-4000-8000-000000000002");
    assert_eq!(r.line, 4);
    // No event time: the form's start, marked approximate.
    assert_eq!(r.occurred_at.to_rfc3339(), "2016-05-21T11:55:00+06:00");
    assert!(r.approximate);
    assert_eq!(r.tags, ["rally"]);
}

/// KoboToolbox's CSV export: `;` separated, groups joined with "/", a
/// geopoint as one column plus `_name_latitude` etc., media with a `_URL`
/// column, then Kobo's own columns.
const KOBO: &str = "\u{feff}start;end;today;deviceid;group_incident/title;group_incident/description;group_incident/event_date;location;_location_latitude;_location_longitude;_location_altitude;_location_precision;photo;photo_URL;_attachments;_id;_uuid;_submission_time;_validation_status;_notes;_status;_submitted_by;__version__;_tags;_index
\"2016-05-21T10:50:00.000+06:00\";\"2016-05-21T10:58:00.000+06:00\";\"2016-05-21\";\"ee.kobotoolbox.org:Xk3bq\";\"Arrest at the bus stop\";\"Taken at the stop\";\"2016-05-21T10:40:00.000+06:00\";\"43.2567 76.9286 850 5\";\"43.2567\";\"76.9286\";\"850\";\"5\";\"stop.jpg\";\"https://kc.kobotoolbox.org/media/original?media_file=user%2Fattachments%2Fabc%2Fstop.jpg\";\"[{\"\"mimetype\"\": \"\"image/jpeg\"\", \"\"filename\"\": \"\"user/attachments/abc/stop.jpg\"\"}]\";\"1001\";\"2b7e1a3c-0000-4000-8000-000000000001\";\"2016-05-21T04:59:12\";\"\";\"\";\"submitted_via_web\";\"\";\"vGh7\";\"\";\"1\"
\"\";\"\";\"\";\"\";\"Late upload\";\"\";\"\";\"43.25 76.95 0 0\";\"\";\"\";\"\";\"\";\"\";\"\";\"\";\"1002\";\"2b7e1a3c-0000-4000-8000-000000000002\";\"2016-05-22T06:00:00\";\"\";\"\";\"submitted_via_web\";\"\";\"vGh7\";\"detained\";\"2\"
";

#[test]
fn a_kobotoolbox_export_maps_without_any_map() {
    let parsed = check_with(KOBO, options("kobo.csv"));
    assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
    assert_eq!(
        keys(&parsed),
        [
            "2b7e1a3c-0000-4000-8000-000000000001",
            "2b7e1a3c-0000-4000-8000-000000000002"
        ]
    );
    let r = &parsed.reports[0];
    assert_eq!(r.title, "Arrest at the bus stop");
    assert_eq!(r.occurred_at.to_rfc3339(), "2016-05-21T10:40:00+06:00");
    assert_eq!(
        (r.place.name.as_str(), r.place.lat, r.place.lon),
        ("", Some(43.2567), Some(76.9286))
    );
    assert_eq!(r.attachment_names, ["stop.jpg"]);
    let r = &parsed.reports[1];
    // Neither an event date nor start: Kobo's _submission_time, which is UTC.
    assert_eq!(r.occurred_at.to_rfc3339(), "2016-05-22T06:00:00+00:00");
    assert!(r.approximate);
    // The geopoint column alone gives the coordinates.
    assert_eq!((r.place.lat, r.place.lon), (Some(43.25), Some(76.95)));
    assert_eq!(r.tags, ["detained"]);
}

#[test]
fn a_corrected_file_keeps_each_rows_source_key_when_an_id_column_exists() {
    let first = "id,title,date\na-1,Arrest,21.05.2016\na-2,Rally,21.05.2016\n";
    let corrected = "id,title,date\nnew,Added row,23.05.2016\na-2,Rally dispersed,22.05.2016\na-1,Arrest at the stop,21.05.2016 10:40\n";
    let before = check(first);
    let after = check(corrected);
    assert_eq!(keys(&before), ["a-1", "a-2"]);
    assert_eq!(keys(&after), ["new", "a-2", "a-1"]);
    assert_eq!(after.reports[2].title, "Arrest at the stop");
    // Without an id the key is the data row: stable for the same bytes.
    let plain = "title,date\nArrest,21.05.2016\nRally,21.05.2016\n";
    assert_eq!(keys(&check(plain)), ["row:1", "row:2"]);
    assert_eq!(check(plain), check(plain));
    assert_eq!(check(ODK_CENTRAL), check(ODK_CENTRAL));
}

#[test]
fn a_repeated_id_refuses_the_later_row() {
    let parsed = check("id,title,date\nx,first,21.05.2016\nx,second,21.05.2016\n");
    assert_eq!(keys(&parsed), ["x"]);
    assert_eq!(parsed.refused[0].line, 3);
    assert!(
        parsed.refused[0].reason.contains("line 2"),
        "{:?}",
        parsed.refused
    );
}

#[test]
fn files_whose_header_cannot_work_are_refused_whole() {
    let err = refuse(
        "Arrest at the bus stop,2016-05-21,Almaty\n",
        ImportOptions {
            format: Format::Csv,
            ..options("x")
        },
    );
    assert!(matches!(err, ImportError::NoHeader { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("add a first line naming the columns"),
        "{err}"
    );
    let err = refuse("date,place\n2016-05-21,Almaty\n", options("x.csv"));
    assert!(err.to_string().contains("no title column"), "{err}");
    let err = refuse("title,place\nx,Almaty\n", options("x.csv"));
    assert!(err.to_string().contains("no occurred_at column"), "{err}");
    let err = refuse("title,subject,date\nx,y,2016-05-21\n", options("x.csv"));
    assert_eq!(
        err,
        ImportError::ColumnsConflict {
            file: "x.csv".into(),
            field: "title".into(),
            columns: vec!["title".into(), "subject".into()]
        }
    );
    // A header alone is a file with nothing in it to import, not an error.
    assert!(check("title,date\n").reports.is_empty());
}

#[test]
fn a_row_with_too_many_fields_or_a_value_under_an_unnamed_column_is_refused() {
    let parsed =
        check("title,date,\nok,21.05.2016,\nshifted,21.05.2016,oops\nlong,21.05.2016,,extra\n");
    assert_eq!(keys(&parsed), ["row:1"]);
    let refused: Vec<(usize, bool)> = parsed
        .refused
        .iter()
        .map(|r| {
            (
                r.line,
                r.reason.contains("column 3 has no name")
                    || r.reason.contains("4 fields but the header has 3"),
            )
        })
        .collect();
    assert_eq!(refused, [(3, true), (4, true)]);
}

#[test]
fn tab_and_semicolon_separated_files_are_read() {
    let tabs = check("title\tdate\tplace\nArrest\t21.05.2016\tAlmaty, Abay street\n");
    assert_eq!(tabs.reports[0].place.name, "Almaty, Abay street");
    let semis = check("title;date;lat;lon\nArrest;21.05.2016;43,25;76,95\n");
    assert_eq!(semis.reports[0].place.lat, Some(43.25));
}

#[test]
fn a_time_column_with_a_default_date_dates_rows_that_have_only_a_time() {
    let mut opts = options("times.csv");
    opts.default_date = chrono::NaiveDate::from_ymd_opt(2016, 5, 21);
    let parsed = check_with("title,time\nArrest,10:40 am\nRally,\n", opts);
    let at: Vec<(String, bool)> = parsed
        .reports
        .iter()
        .map(|r| (r.occurred_at.to_rfc3339(), r.approximate))
        .collect();
    assert_eq!(
        at,
        [
            ("2016-05-21T10:40:00+06:00".into(), false),
            ("2016-05-21T00:00:00+06:00".into(), true)
        ]
    );
}

#[test]
fn a_hundred_thousand_rows_parse_correctly() {
    let mut csv = String::from("id,title,occurred_at,place,latitude,longitude,tags,description\n");
    for i in 0..100_000 {
        csv.push_str(&format!(
            "r{i},Report {i},2016-05-21T{:02}:{:02}:00+06:00,Almaty,43.{i},76.9,arrest;rally,\"Line one\nline two of {i}\"\n",
            (i / 60) % 24,
            i % 60
        ));
    }
    let started = Instant::now();
    let parsed = check(&csv);
    println!(
        "parsed 100,000 CSV rows ({} bytes) in {:?}",
        csv.len(),
        started.elapsed()
    );
    assert!(
        parsed.refused.is_empty(),
        "{:?}",
        &parsed.refused[..parsed.refused.len().min(3)]
    );
    assert_eq!(parsed.reports.len(), 100_000);
    let last = &parsed.reports[99_999];
    assert_eq!(last.source_key, "r99999");
    assert_eq!(last.title, "Report 99999");
    assert_eq!(last.line, 2 + 2 * 99_999);
    assert_eq!(last.description, "Line one\nline two of 99999");
    assert_eq!(last.occurred_at.to_rfc3339(), "2016-05-21T10:39:00+06:00");
}

/// Found by fuzzing (`tests/fuzz/regressions/import_csv/`): Almaty's local
/// mean time, +05:07:48, has seconds that RFC 3339 cannot hold, so the
/// stored report named another instant. It is stored at +05:08.
#[test]
fn an_offset_with_seconds_is_kept_as_the_same_instant_at_whole_minutes() {
    let parsed = check("title,date\nlong ago,1008-05-21\n");
    let at = parsed.reports[0].occurred_at;
    assert_eq!(at.offset().local_minus_utc() % 60, 0, "{at}");
    let lmt = chrono::FixedOffset::east_opt(5 * 3600 + 7 * 60 + 48).unwrap();
    let expected = chrono::NaiveDate::from_ymd_opt(1008, 5, 21)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_local_timezone(lmt)
        .unwrap();
    assert_eq!(at, expected, "the same instant");
    let stored = crate::document::rfc3339(&at);
    assert_eq!(chrono::DateTime::parse_from_rfc3339(&stored).unwrap(), at);
}
