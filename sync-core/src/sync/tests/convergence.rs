//! Convergence under reordering, duplication and loss, as a property test:
//! 2–6 device replicas and the server, random edits of every field kind,
//! random offline periods (requests in flight for a long time), requests
//! delivered out of order, twice, or with their response lost. After a final
//! full exchange every replica holds exactly the reports it may read, each
//! equal to the server's (same heads, same typed view).

use proptest::prelude::*;

use super::*;
use crate::model::{Edit, Person, Place, ReviewStatus, Role, TimelineEntry};
use crate::protocol::DEFAULT_MAX_REQUEST_BYTES;
use crate::sync::policy::may_read;

#[derive(Clone, Debug)]
enum Step {
    Create {
        dev: usize,
    },
    Edit {
        dev: usize,
        report: usize,
        edit: EditKind,
    },
    Send {
        dev: usize,
        max_bytes: usize,
    },
    Deliver {
        pick: usize,
        respond: bool,
        duplicate: bool,
    },
}

#[derive(Clone, Debug)]
enum EditKind {
    Title(u8),
    Append(u8),
    Insert(u8),
    AddTag(u8),
    RemoveTag(u8),
    Person(u8),
    Timeline(u8),
    Place(u8),
    Occurred(u8),
    Review(u8),
}

fn edit_kind() -> impl Strategy<Value = EditKind> {
    prop_oneof![
        any::<u8>().prop_map(EditKind::Title),
        any::<u8>().prop_map(EditKind::Append),
        any::<u8>().prop_map(EditKind::Insert),
        (0u8..4).prop_map(EditKind::AddTag),
        (0u8..4).prop_map(EditKind::RemoveTag),
        any::<u8>().prop_map(EditKind::Person),
        any::<u8>().prop_map(EditKind::Timeline),
        any::<u8>().prop_map(EditKind::Place),
        any::<u8>().prop_map(EditKind::Occurred),
        any::<u8>().prop_map(EditKind::Review),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (0usize..6).prop_map(|dev| Step::Create { dev }),
        6 => (0usize..6, any::<usize>(), edit_kind()).prop_map(|(dev, report, edit)| Step::Edit { dev, report, edit }),
        3 => (0usize..6, prop_oneof![Just(DEFAULT_MAX_REQUEST_BYTES), Just(600usize)]).prop_map(|(dev, max_bytes)| Step::Send { dev, max_bytes }),
        3 => (any::<usize>(), any::<bool>(), any::<bool>()).prop_map(|(pick, respond, duplicate)| Step::Deliver { pick, respond, duplicate }),
    ]
}

fn roles() -> impl Strategy<Value = Vec<DeviceRole>> {
    prop::collection::vec(
        prop_oneof![Just(DeviceRole::Reporter), Just(DeviceRole::Coordinator)],
        2..=6,
    )
}

fn to_edit(kind: &EditKind, current_description: &str, reviewer: &str) -> Edit {
    let tags = ["arrest", "eviction", "rally", "police"];
    match *kind {
        EditKind::Title(n) => Edit::SetTitle(format!("title {n}")),
        EditKind::Append(n) => Edit::AppendDescription(format!(" appended {n}.")),
        EditKind::Insert(n) => {
            // Insert a word at a character boundary picked by `n`, so that
            // concurrent inserts land in different places of the same text.
            let chars: Vec<char> = current_description.chars().collect();
            let at = if chars.is_empty() {
                0
            } else {
                n as usize % (chars.len() + 1)
            };
            let mut text: String = chars[..at].iter().collect();
            text.push_str(&format!("[w{n}]"));
            text.extend(&chars[at..]);
            Edit::SetDescription(text)
        }
        EditKind::AddTag(n) => Edit::AddTag(tags[n as usize % 4].into()),
        EditKind::RemoveTag(n) => Edit::RemoveTag(tags[n as usize % 4].into()),
        EditKind::Person(n) => Edit::AddPerson(Person {
            name: format!("person {n}"),
            role: [
                Role::Officer,
                Role::Detainee,
                Role::Witness,
                Role::Victim,
                Role::Other,
            ][n as usize % 5],
            note: format!("badge {n}"),
        }),
        EditKind::Timeline(n) => Edit::AddTimelineEntry(TimelineEntry {
            at: t(&format!("2016-05-21T{:02}:{:02}:00+06:00", n % 24, n % 60)),
            text: format!("event {n}"),
            approximate: n % 2 == 0,
        }),
        EditKind::Place(n) => Edit::SetPlace(Place {
            name: format!("place {n}"),
            lat: Some(f64::from(n) / 3.0 - 40.0),
            lon: Some(f64::from(n) / 2.0),
        }),
        EditKind::Occurred(n) => Edit::SetOccurredAt {
            at: t(&format!("2016-05-{:02}T10:00:00+06:00", n % 28 + 1)),
            approximate: n % 3 == 0,
        },
        EditKind::Review(n) => Edit::SetReview {
            status: [
                ReviewStatus::Unverified,
                ReviewStatus::Verified,
                ReviewStatus::Disputed,
            ][n as usize % 3],
            note: format!("note {n}"),
            reviewer: reviewer.into(),
            at: t("2016-06-01T09:00:00Z"),
        },
    }
}

fn run(roles: Vec<DeviceRole>, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut w = World::new(&roles);
    let n = roles.len();
    let mut in_flight: Vec<(usize, SyncRequest)> = Vec::new();
    for step in steps {
        match step {
            Step::Create { dev } => {
                w.record(dev % n, "new");
            }
            Step::Edit { dev, report, edit } => {
                let dev = dev % n;
                let me = w.devices[dev].key.device_id();
                let role = w.devices[dev].role;
                let replica = &mut w.devices[dev].replica;
                let editable: Vec<ReportId> = replica
                    .report_ids()
                    .unwrap()
                    .into_iter()
                    .filter(|id| {
                        role == DeviceRole::Coordinator
                            || replica.report(id).unwrap().created_by == me.as_str()
                    })
                    .collect();
                if editable.is_empty()
                    || (matches!(edit, EditKind::Review(_)) && role != DeviceRole::Coordinator)
                {
                    continue;
                }
                let id = &editable[report % editable.len()];
                let current = replica.report(id).unwrap().description;
                replica
                    .edit_report(id, &[to_edit(&edit, &current, me.as_str())])
                    .unwrap();
            }
            Step::Send { dev, max_bytes } => {
                let dev = dev % n;
                let plan = w.devices[dev].replica.prepare_sync(max_bytes).unwrap();
                in_flight.push((dev, plan.request));
            }
            Step::Deliver {
                pick,
                respond,
                duplicate,
            } => {
                if in_flight.is_empty() {
                    continue;
                }
                let (dev, request) = in_flight.remove(pick % in_flight.len());
                let mut response = w.serve(dev, &request);
                if duplicate {
                    response = w.serve(dev, &request);
                }
                if respond {
                    w.devices[dev]
                        .replica
                        .complete_sync(&request, &response)
                        .unwrap();
                }
            }
        }
    }
    // The final full exchange: everyone sends, then everyone receives.
    for pass in 0..2 {
        for dev in 0..n {
            let summary = w.sync(dev, DEFAULT_MAX_REQUEST_BYTES);
            prop_assert!(
                summary.refused.is_empty(),
                "pass {pass}, device {dev}: refused {:?}",
                summary.refused
            );
        }
    }
    let server_docs = w.server.documents();
    for dev in 0..n {
        let member = w.member(dev);
        let replica = &w.devices[dev].replica;
        let mut expected = Vec::new();
        for (id, doc) in &server_docs {
            let server_view = crate::document::read_report(doc).unwrap();
            let creator: crate::DeviceId = server_view.created_by.clone();
            if !may_read(&member, &creator) {
                continue;
            }
            expected.push(id.clone());
            let mut mine = replica.document(id).unwrap();
            let mut heads = mine.get_heads();
            heads.sort();
            let mut server_heads = doc.get_heads();
            server_heads.sort();
            prop_assert_eq!(heads, server_heads, "device {} report {}", dev, id);
            prop_assert_eq!(replica.report(id).unwrap(), server_view);
        }
        prop_assert_eq!(
            replica.report_ids().unwrap(),
            expected,
            "device {} holds exactly what it may read",
            dev
        );
        prop_assert_eq!(replica.pending_change_count().unwrap(), 0);
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn replicas_converge_whatever_the_order_loss_and_duplication(
        roles in roles(),
        steps in prop::collection::vec(step(), 1..60),
    ) {
        run(roles, steps)?;
    }
}

#[test]
fn concurrent_offline_edits_to_one_description_both_arrive_everywhere() {
    let mut w = World::new(&[DeviceRole::Reporter, DeviceRole::Coordinator]);
    let id = w.record(0, "r");
    w.devices[0]
        .replica
        .edit_report(
            &id,
            &[Edit::SetDescription(
                "Arrested at the bus stop. Released later.".into(),
            )],
        )
        .unwrap();
    w.sync(0, DEFAULT_MAX_REQUEST_BYTES);
    w.sync(1, DEFAULT_MAX_REQUEST_BYTES);
    // Both go offline and edit different sentences.
    w.devices[0]
        .replica
        .edit_report(
            &id,
            &[Edit::SetDescription(
                "Arrested at the bus stop at 10:40. Released later.".into(),
            )],
        )
        .unwrap();
    w.devices[1]
        .replica
        .edit_report(
            &id,
            &[Edit::SetDescription(
                "Arrested at the bus stop. Released later, after 13:00.".into(),
            )],
        )
        .unwrap();
    for dev in [0, 1, 0] {
        w.sync(dev, DEFAULT_MAX_REQUEST_BYTES);
    }
    let expected = "Arrested at the bus stop at 10:40. Released later, after 13:00.";
    assert_eq!(
        w.devices[0].replica.report(&id).unwrap().description,
        expected
    );
    assert_eq!(
        w.devices[1].replica.report(&id).unwrap().description,
        expected
    );
}
