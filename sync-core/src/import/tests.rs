//! Whole-file checks every format shares, format detection, the options'
//! parsing, and that no input makes `parse` panic.

use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, NaiveDate};
use proptest::prelude::*;

use super::*;
use crate::document::ReportDocument;
use crate::identity::DeviceKey;
use crate::ids::{CaseId, ReportId};

const SAMPLE: &str = include_str!("../../tests/samples/almaty-2016-05-21-rally-arrests.txt");
const CSV: &str = "title,date,place\nArrest at the bus stop,21.05.2016 10:40,Almaty\n";
const JSON: &str = "[{\"title\": \"Arrest\", \"occurred_at\": \"21.05.2016 10:40\"}]";

const FORMATS: [(Format, &str); 3] = [
    (Format::Json, "reports.json"),
    (Format::Csv, "reports.csv"),
    (Format::Text, "report.txt"),
];

fn options(format: Format, file: &str) -> ImportOptions {
    ImportOptions {
        format,
        ..ImportOptions::almaty(file)
    }
}

fn refuse(bytes: &[u8], format: Format, file: &str) -> ImportError {
    parse(bytes, &options(format, file)).unwrap_err()
}

#[test]
fn an_empty_file_is_refused_in_every_format() {
    for (format, file) in FORMATS {
        for bytes in [&b""[..], b"  \n\r\n\t", b"\xEF\xBB\xBF\n"] {
            assert_eq!(
                refuse(bytes, format, file),
                ImportError::Empty { file: file.into() }
            );
        }
    }
    assert_eq!(
        refuse(b"", Format::Auto, "").to_string(),
        "the file is empty: there is nothing to import"
    );
}

#[test]
fn latin_1_bytes_are_refused_naming_line_column_and_offset_in_every_format() {
    // "café" in Latin-1 on the second line.
    for (format, file) in FORMATS {
        let bytes = b"title,date\nArrest at the caf\xE9,21.05.2016\n";
        let err = refuse(bytes, format, file);
        assert_eq!(
            err,
            ImportError::NotUtf8 {
                file: file.into(),
                line: 2,
                column: 18,
                offset: 28,
                byte: 0xE9
            }
        );
        let message = err.to_string();
        assert!(
            message.contains("byte 0xE9 at line 2, column 18 (byte offset 28)"),
            "{message}"
        );
        assert!(
            message.contains("Latin-1") && message.contains("save it as UTF-8"),
            "{message}"
        );
    }
}

#[test]
fn utf_16_text_is_refused_with_or_without_a_byte_order_mark() {
    let utf16: Vec<u8> = "title,date\nArrest,21.05.2016\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let with_bom: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(utf16.iter().copied())
        .collect();
    for (format, file) in FORMATS {
        for bytes in [&with_bom, &utf16] {
            let err = refuse(bytes, format, file);
            assert_eq!(err, ImportError::Utf16 { file: file.into() });
            assert!(err.to_string().contains("save it as UTF-8"));
        }
    }
    let err = refuse(
        b"title\n\x89PNG\x00\x00\x00\rIHDR and then much more text",
        Format::Auto,
        "x.csv",
    );
    assert!(
        matches!(
            err,
            ImportError::Binary {
                line: 2,
                offset: 10,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_10_mb_single_line_is_refused_quickly_in_every_format() {
    for (format, file) in FORMATS {
        for line in [
            vec![b'a'; 10 << 20],
            [b"[\"".as_slice(), &vec![b'x'; 10 << 20], b"\"]"].concat(),
        ] {
            let started = Instant::now();
            let err = refuse(&line, format, file);
            let elapsed = started.elapsed();
            assert_eq!(
                err,
                ImportError::LineTooLong {
                    file: file.into(),
                    line: 1,
                    max: MAX_LINE_BYTES
                }
            );
            assert!(elapsed < Duration::from_secs(2), "{format}: {elapsed:?}");
        }
    }
    // A line of exactly the limit is fine; the limit counts the line's
    // bytes without its line end.
    let longest = &"word ".repeat(MAX_LINE_BYTES / 5 + 1)[..MAX_LINE_BYTES];
    let text = format!("21 May 2016\n\n{longest}\n");
    let refused = parse(text.as_bytes(), &options(Format::Text, "x.txt")).map(|p| p.refused.len());
    assert_eq!(
        refused,
        Ok(1),
        "refused for its size as a description, not as a line"
    );
    let err = refuse(
        format!("21 May 2016\n\n{longest}w\n").as_bytes(),
        Format::Text,
        "x.txt",
    );
    assert!(
        matches!(err, ImportError::LineTooLong { line: 3, .. }),
        "{err}"
    );
}

#[test]
fn a_utf_8_byte_order_mark_is_dropped() {
    let with_bom = [b"\xEF\xBB\xBF".as_slice(), CSV.as_bytes()].concat();
    let parsed = parse(&with_bom, &options(Format::Auto, "x.csv")).unwrap();
    assert_eq!(parsed.reports.len(), 1);
    assert_eq!(parsed.reports[0].title, "Arrest at the bus stop");
}

#[test]
fn the_format_is_chosen_by_extension_else_by_content() {
    let detect = |bytes: &str, file: &str| {
        parse(bytes.as_bytes(), &options(Format::Auto, file)).map(|p| p.format)
    };
    assert_eq!(detect(CSV, "export.CSV"), Ok(Format::Csv));
    assert_eq!(detect(CSV, "export.tsv"), Ok(Format::Csv));
    assert_eq!(detect(JSON, "reports.json"), Ok(Format::Json));
    assert_eq!(detect(SAMPLE, "notes.md"), Ok(Format::Text));
    assert_eq!(detect(CSV, "download"), Ok(Format::Csv));
    assert_eq!(detect(JSON, "download"), Ok(Format::Json));
    assert_eq!(detect(SAMPLE, "download"), Ok(Format::Text));
    assert_eq!(detect(CSV, ""), Ok(Format::Csv));
    // An explicit format wins over the extension.
    let parsed = parse(CSV.as_bytes(), &options(Format::Text, "x.csv")).unwrap();
    assert_eq!(parsed.format, Format::Text);
}

#[test]
fn format_and_zone_options_parse_from_their_command_line_spelling() {
    assert_eq!("auto".parse(), Ok(Format::Auto));
    assert_eq!(" JSON ".parse(), Ok(Format::Json));
    assert_eq!("csv".parse(), Ok(Format::Csv));
    assert_eq!("text".parse(), Ok(Format::Text));
    let err = "xml".parse::<Format>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown format \"xml\"; expected one of: auto, json, csv, text"
    );
    assert_eq!(Format::Csv.to_string(), "csv");

    assert_eq!(
        "Asia/Almaty".parse(),
        Ok(Zone::Named(chrono_tz::Asia::Almaty))
    );
    assert_eq!("UTC".parse(), Ok(Zone::Named(chrono_tz::UTC)));
    let plus6 = FixedOffset::east_opt(6 * 3600).unwrap();
    assert_eq!("+06:00".parse(), Ok(Zone::Fixed(plus6)));
    assert_eq!("+0600".parse(), Ok(Zone::Fixed(plus6)));
    assert_eq!(
        "-03:30".parse(),
        Ok(Zone::Fixed(FixedOffset::west_opt(3 * 3600 + 1800).unwrap()))
    );
    for bad in ["Almaty", "asia/almaty", "+25:00", "6", ""] {
        let err = bad.parse::<Zone>().unwrap_err();
        assert!(err.to_string().contains("Asia/Almaty"), "{bad}: {err}");
    }
    assert_eq!(Zone::Fixed(plus6).to_string(), "+06:00");
    assert_eq!(
        Zone::from(chrono_tz::Asia::Almaty).to_string(),
        "Asia/Almaty"
    );
}

/// The module's promise: every report returned can be created.
#[test]
fn every_imported_report_creates_a_document() {
    let key = DeviceKey::generate().unwrap();
    let case = CaseId::random().unwrap();
    let now = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap();
    for (bytes, file) in [(SAMPLE, "sample.txt"), (CSV, "x.csv"), (JSON, "x.json")] {
        let parsed = parse(bytes.as_bytes(), &options(Format::Auto, file)).unwrap();
        assert!(!parsed.reports.is_empty());
        for report in &parsed.reports {
            let id = ReportId::derived_from(&[
                case.as_str().as_bytes(),
                file.as_bytes(),
                report.source_key.as_bytes(),
            ]);
            let new = report.to_new_report(id, case.clone());
            let (doc, _) = ReportDocument::create(&key, &new, now).unwrap();
            let view = doc.view().unwrap();
            assert_eq!(view.title, report.title);
            assert_eq!(view.timeline, report.timeline);
            assert_eq!(view.occurred_at, Some(report.occurred_at));
        }
    }
}

fn no_panic(bytes: &[u8]) {
    for format in [Format::Auto, Format::Json, Format::Csv, Format::Text] {
        for file in ["x.json", "x.csv", "x.txt", "x"] {
            let _ = parse(bytes, &options(format, file));
            let mut naive = options(format, file);
            naive.timezone = None;
            naive.map = vec![("title".into(), "description".into())];
            let _ = parse(bytes, &naive);
        }
    }
}

/// Text made of what the parsers look at: separators, quotes, brackets,
/// digits, month names, times, column names, non-ASCII letters.
fn texty() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        ",",
        ";",
        "\t",
        "\n",
        "\r\n",
        "\"",
        "'",
        "’",
        "[",
        "]",
        "{",
        "}",
        ":",
        ".",
        "/",
        "-",
        "+",
        " ",
        "title",
        "date",
        "time",
        "place",
        "lat",
        "lon",
        "tags",
        "people",
        "id",
        "KEY",
        "SubmissionDate",
        "start",
        "_uuid",
        "location-Latitude",
        "meta-instanceID",
        "format",
        "fieldsync-export",
        "version",
        "reports",
        "occurred_at",
        "timeline",
        "at",
        "May",
        "21",
        "2016",
        "10",
        "40",
        "am",
        "p.m.",
        "o'clock",
        "around",
        "After",
        "#",
        "Aleksey Nigay",
        "kz380KP02",
        "é",
        "Ж",
        "0",
        "91",
        "-180",
        "1e400",
        "NaN",
        "null",
        "true",
        "\\",
        "(",
        ")",
        "published",
    ]);
    prop::collection::vec(pieces, 0..80).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        no_panic(&bytes);
    }

    #[test]
    fn parse_never_panics_on_text_that_looks_like_reports(text in texty()) {
        no_panic(text.as_bytes());
        // With a header that names every field, the rows are what varies.
        no_panic(format!("title,occurred_at,time,place,lat,lon,tags,people,description\n{text}").as_bytes());
        no_panic(format!("[{{\"title\": \"x\", \"occurred_at\": \"{}\"}}, {text}]", text.replace('"', "")).as_bytes());
    }
}

/// Shapes that would expose work growing with the square of the input:
/// one long sentence, thousands of dated and timed sentences, a text of
/// capitalised words, a cell of 100,000 tags or people, a JSON array of
/// 100,000 tags. Each takes well under a second; the bound only catches a
/// quadratic regression (which took minutes here).
#[test]
fn hostile_inputs_parse_in_time_linear_in_their_size() {
    let list = |n: usize, item: &dyn Fn(usize) -> String, sep: &str| {
        (0..n).map(item).collect::<Vec<_>>().join(sep)
    };
    let unit = "at 10:40 am on May 21 Aleksey Nigay saw kz380KP02 published ";
    let cases = [
        (
            "x.txt",
            format!("21 May 2016\n\n{}", unit.repeat(250_000 / unit.len())),
        ),
        (
            "x.txt",
            format!(
                "21 May 2016\n\n{}",
                "At 1 am on 1 May 2016 Ab Cd. ".repeat(250_000 / 29)
            ),
        ),
        (
            "x.txt",
            format!("21 May 2016\n\n{}", "Ab Cd Ef ".repeat(250_000 / 9)),
        ),
        (
            "x.csv",
            format!(
                "title,date,tags\nx,2016-05-21,\"{}\"\n",
                list(100_000, &|i| format!("t{i}"), ";")
            ),
        ),
        (
            "x.csv",
            format!(
                "title,date,people\nx,2016-05-21,\"{}\"\n",
                list(100_000, &|i| format!("P{i}"), "\n")
            ),
        ),
        (
            "x.json",
            format!(
                "[{{\"title\":\"x\",\"occurred_at\":\"2016-05-21\",\"tags\":[{}]}}]",
                list(100_000, &|i| format!("\"t{i}\""), ",\n")
            ),
        ),
    ];
    for (file, text) in cases {
        let started = Instant::now();
        let parsed = parse(text.as_bytes(), &options(Format::Auto, file)).unwrap();
        let elapsed = started.elapsed();
        println!("{file}, {} bytes: {elapsed:?}", text.len());
        assert_eq!(parsed.reports.len() + parsed.refused.len(), 1);
        assert!(elapsed < Duration::from_secs(20), "{file}: {elapsed:?}");
    }
}

#[test]
fn a_date_without_a_year_takes_the_year_option_and_is_refused_without_it() {
    let text =
        b"Arrest at the bus stop on May 21\n\nAt 10:40 Aleksey was arrested at the bus stop.\n";
    let without = parse(text, &options(Format::Text, "note.txt")).unwrap();
    assert!(without.reports.is_empty());
    let refusal = &without.refused[0];
    assert!(refusal.needs_year, "{refusal:?}");
    assert!(
        refusal.reason.contains("has no year") && refusal.reason.ends_with(super::text::NO_YEAR),
        "{}",
        refusal.reason
    );

    let with = parse(
        text,
        &ImportOptions {
            year: Some(2024),
            ..options(Format::Text, "note.txt")
        },
    )
    .unwrap();
    assert!(with.refused.is_empty(), "{:?}", with.refused);
    let at = with.reports[0].occurred_at;
    assert_eq!(
        at.date_naive(),
        NaiveDate::from_ymd_opt(2024, 5, 21).unwrap()
    );
}
