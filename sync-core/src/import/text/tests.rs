use super::*;
use crate::import::{parse, Format, ParsedFile, Zone};

const SAMPLE: &str = include_str!("../../../tests/samples/almaty-2016-05-21-rally-arrests.txt");

fn almaty(file: &str) -> ImportOptions {
    ImportOptions::almaty(file)
}

fn check(text: &str) -> ParsedFile {
    parse(text.as_bytes(), &almaty("report.txt")).unwrap()
}

/// (time, approximate, text) of each entry.
fn entries(report: &ImportedReport) -> Vec<(String, bool, &str)> {
    report
        .timeline
        .iter()
        .map(|e| (e.at.to_rfc3339(), e.approximate, e.text.as_str()))
        .collect()
}

#[test]
fn the_almaty_sample_gives_one_report_on_21_may_2016_with_entries_at_10_40_11_00_and_13_00() {
    let parsed = parse(
        SAMPLE.as_bytes(),
        &almaty("almaty-2016-05-21-rally-arrests.txt"),
    )
    .unwrap();
    assert_eq!(parsed.format, Format::Text);
    assert!(parsed.refused.is_empty(), "{:?}", parsed.refused);
    assert_eq!(parsed.reports.len(), 1);
    let report = &parsed.reports[0];
    assert_eq!(report.source_key, "text");
    assert_eq!(report.line, 1);
    assert_eq!(
        report.title,
        "May 21, Almata: Mass Arrests at a Rally against the Sale of Land"
    );
    assert_eq!(report.description, SAMPLE.trim());
    // The earliest entry, hedged with "around".
    assert_eq!(report.occurred_at.to_rfc3339(), "2016-05-21T10:40:00+06:00");
    assert!(report.approximate);
    assert_eq!(report.place.name, "Almata");
    assert!(
        report.people.is_empty(),
        "candidates are never put into people"
    );

    let entries = entries(report);
    let times: Vec<(&str, bool)> = entries.iter().map(|(t, a, _)| (t.as_str(), *a)).collect();
    // Exactly these three: nothing for "December 16, 1986", "more than 4
    // hours", "just over an hour", "about 15 minutes", "more than 3 hours".
    assert_eq!(
        times,
        [
            ("2016-05-21T10:40:00+06:00", true),
            ("2016-05-21T11:00:00+06:00", false),
            // "After 1:00 pm": a lower bound, so approximate.
            ("2016-05-21T13:00:00+06:00", true),
        ]
    );
    assert!(entries[0]
        .2
        .starts_with("Our comrade, a socialist activist"));
    assert!(entries[0]
        .2
        .ends_with("leaving his home at around 10:40 am."));
    assert_eq!(
        entries[1].2,
        "At 11 am, people assembled at the building of the central library, hoping to move into the square, but could not."
    );
    assert!(entries[2]
        .2
        .starts_with("After 1:00 pm Alexey was finally released"));
    assert!(entries[2].2.ends_with("arrested at the Republic square."));
}

#[test]
fn the_almaty_sample_offers_its_people_plate_and_place_as_candidates() {
    let parsed = parse(SAMPLE.as_bytes(), &almaty("sample.md")).unwrap();
    let c = &parsed.candidates;
    for name in [
        "Aleksey Nigay",
        "Tulegen Shakirov",
        "Maksat Shakyrbayev",
        "Andrey Buzykin",
        "Baurjan Lesbayev",
        "Abay Erekenov",
        "Timur Kibirov",
    ] {
        assert!(
            c.people.iter().any(|p| p == name),
            "{name} missing from {:?}",
            c.people
        );
    }
    // In order of first appearance, each once.
    let first = |n: &str| c.people.iter().position(|p| p == n).unwrap();
    assert!(first("Andrey Buzykin") < first("Aleksey Nigay"));
    assert!(first("Aleksey Nigay") < first("Tulegen Shakirov"));
    assert_eq!(
        c.people.iter().filter(|p| *p == "Tulegen Shakirov").count(),
        1
    );
    for not_a_person in [
        "Mass Arrests",
        "Trade Unions",
        "Abay Furmanov",
        "Log Out",
        "Pervyy Kanal Kazahstana",
        "On Facebook",
    ] {
        assert!(
            !c.people.iter().any(|p| p == not_a_person),
            "{not_a_person} in {:?}",
            c.people
        );
    }
    assert_eq!(c.plates, ["kz380KP02"]);
    assert_eq!(c.places, ["Almata"]);
}

#[test]
fn a_narrative_without_a_timezone_is_refused_whole() {
    let err = parse(SAMPLE.as_bytes(), &ImportOptions::new("sample.txt")).unwrap_err();
    assert_eq!(
        err,
        ImportError::TimezoneRequired {
            file: "sample.txt".into()
        }
    );
    assert!(err.to_string().contains("give --timezone"), "{err}");
}

#[test]
fn a_date_without_a_year_is_the_latest_such_day_not_after_the_publication() {
    let parsed = check(
        "December 30: night raid on the editorial office\n\n\
         Police came at 4 o'clock in the morning and left at 6 o'clock in the evening.\n\n\
         Posted on 2 January 2017.\n",
    );
    let report = &parsed.reports[0];
    assert_eq!(
        entries(report),
        [(
            "2016-12-30T04:00:00+06:00".to_owned(),
            false,
            "Police came at 4 o'clock in the morning and left at 6 o'clock in the evening."
        )]
    );
    assert_eq!(report.occurred_at.to_rfc3339(), "2016-12-30T04:00:00+06:00");
    assert!(!report.approximate);
}

#[test]
fn a_narrative_without_times_is_dated_midnight_and_approximate() {
    let parsed = check("# Eviction on 14th of July 2019\n\nFamilies were put on the street.\n");
    let report = &parsed.reports[0];
    assert_eq!(report.title, "Eviction on 14th of July 2019");
    assert_eq!(report.occurred_at.to_rfc3339(), "2019-07-14T00:00:00+06:00");
    assert!(report.approximate);
    assert!(report.timeline.is_empty());
}

#[test]
fn a_narrative_without_a_date_is_refused_with_its_line_unless_a_default_date_is_given() {
    let text = "\n\nArrests at the square\n\nAt 11 am people gathered.\n";
    let parsed = check(text);
    assert!(parsed.reports.is_empty());
    assert_eq!(parsed.refused.len(), 1);
    assert_eq!(parsed.refused[0].line, 3);
    assert!(
        parsed.refused[0].reason.contains("no date of the events"),
        "{:?}",
        parsed.refused
    );

    let options = ImportOptions {
        default_date: NaiveDate::from_ymd_opt(2016, 5, 21),
        ..almaty("report.txt")
    };
    let parsed = parse(text.as_bytes(), &options).unwrap();
    assert_eq!(
        parsed.reports[0].occurred_at.to_rfc3339(),
        "2016-05-21T11:00:00+06:00"
    );

    let no_year = check("May 21: arrests\n\nAt 11 am people gathered.\n");
    assert!(
        no_year.refused[0].reason.contains("has no year"),
        "{:?}",
        no_year.refused
    );
}

#[test]
fn a_sentence_that_names_its_own_date_puts_its_entry_on_that_date() {
    let parsed = check(
        "Two days of arrests, 21 May 2016\n\n\
         At 10:40 Aleksey was detained. On 22 May 2016 at 9 am he was released. \
         Mr. Nigay said at 10 a.m. the police came. Dr. A. Smith arrived at 3 p.m. Then it ended.\n",
    );
    let report = &parsed.reports[0];
    assert_eq!(
        entries(report),
        [
            (
                "2016-05-21T10:00:00+06:00".to_owned(),
                false,
                "Mr. Nigay said at 10 a.m. the police came."
            ),
            (
                "2016-05-21T10:40:00+06:00".to_owned(),
                false,
                "At 10:40 Aleksey was detained."
            ),
            (
                "2016-05-21T15:00:00+06:00".to_owned(),
                false,
                "Dr. A. Smith arrived at 3 p.m."
            ),
            (
                "2016-05-22T09:00:00+06:00".to_owned(),
                false,
                "On 22 May 2016 at 9 am he was released."
            ),
        ]
    );
}

#[test]
fn hedges_mark_only_the_time_they_qualify() {
    let parsed = check(
        "21 May 2016\n\n\
         About 30 people were detained at 11 am. \
         Shortly before 2 pm the bus left. \
         They arrived at 3:15 pm or so. \
         At 16:00, after a long wait, the lawyer came.\n",
    );
    let flags: Vec<(String, bool)> = parsed.reports[0]
        .timeline
        .iter()
        .map(|e| (e.at.format("%H:%M").to_string(), e.approximate))
        .collect();
    assert_eq!(
        flags,
        [
            ("11:00".to_owned(), false),
            ("14:00".to_owned(), true),
            ("15:15".to_owned(), true),
            ("16:00".to_owned(), false),
        ]
    );
}

#[test]
fn markdown_headings_lists_and_line_wraps_are_read() {
    let parsed = check(
        "Originally posted on 22.05.2016\n\n\
         # May 21, Almaty: arrests\n\n\
         - At 10:40 am a journalist was\n  taken from the bus stop.\n\
         - At noon the square was closed\n",
    );
    let report = &parsed.reports[0];
    assert_eq!(report.title, "May 21, Almaty: arrests");
    assert_eq!(report.line, 3);
    assert_eq!(report.place.name, "Almaty");
    assert_eq!(
        entries(report),
        [
            (
                "2016-05-21T10:40:00+06:00".to_owned(),
                false,
                "At 10:40 am a journalist was taken from the bus stop."
            ),
            (
                "2016-05-21T12:00:00+06:00".to_owned(),
                false,
                "At noon the square was closed"
            ),
        ]
    );
}

#[test]
fn a_narrative_longer_than_a_description_may_be_is_refused_with_a_reason() {
    let text = format!(
        "21 May 2016\n\n{}",
        "Police came. ".repeat(MAX_DESCRIPTION_BYTES / 12 + 1)
    );
    let parsed = check(&text);
    assert!(parsed.reports.is_empty());
    assert!(
        parsed.refused[0].reason.contains("split it"),
        "{:?}",
        parsed.refused
    );
}

#[test]
fn a_very_long_first_line_is_cut_to_a_title_that_fits() {
    let text = format!(
        "21 May 2016 {}\n\nAt 11 am it began.\n",
        "word ".repeat(400)
    );
    let report = &check(&text).reports[0];
    assert!(report.title.len() <= MAX_TITLE_BYTES);
    assert!(report.title.ends_with('…'));
}

#[test]
fn the_same_text_parses_to_the_same_report_twice() {
    let a = parse(SAMPLE.as_bytes(), &almaty("a.txt")).unwrap();
    let b = parse(SAMPLE.as_bytes(), &almaty("a.txt")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn a_fixed_offset_zone_is_used_as_given() {
    let options = ImportOptions {
        timezone: Some("+05:00".parse::<Zone>().unwrap()),
        ..ImportOptions::new("sample.txt")
    };
    let parsed = parse(SAMPLE.as_bytes(), &options).unwrap();
    assert_eq!(
        parsed.reports[0].occurred_at.to_rfc3339(),
        "2016-05-21T10:40:00+05:00"
    );
}
