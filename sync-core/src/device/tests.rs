//! The device's order of a full sync and its patience with a busy server,
//! over a transport that answers from a script and records what it sent.

use std::cell::RefCell;
use std::io::Cursor;

use super::enrollment::{Device, DeviceError, SyncEvent};
use super::meta_keys;
use super::transport::{Request, Response, Transport, TransportError};
use crate::protocol::{SyncResponse, PROTOCOL_VERSION};
use crate::replica::{Replica, SyncFailure};
use crate::CaseId;

struct Scripted {
    sent: RefCell<Vec<String>>,
    busy: bool,
    case_id: String,
    /// What the sync answers say of the case's time zone.
    zone: Option<&'static str>,
}

impl Transport for Scripted {
    fn send(&self, request: Request<'_>) -> Result<Response, TransportError> {
        self.sent
            .borrow_mut()
            .push(format!("{} {}", request.method, request.path));
        if self.busy {
            return Err(TransportError::Refused {
                status: 503,
                message: "busy".into(),
                upload_offset: None,
            });
        }
        let body = match request.path.as_str() {
            "/v1/sync" => SyncResponse {
                version: PROTOCOL_VERSION,
                docs: vec![],
                cursor: 0,
                more: false,
                case_timezone: self.zone.map(str::to_owned),
            }
            .to_json(),
            "/v1/devices" => b"[]".to_vec(),
            "/v1/case" => serde_json::to_vec(&serde_json::json!({
                "case_id": self.case_id,
                "case_name": "almaty",
                "import_salt": "salt from the server",
            }))
            .unwrap(),
            other => panic!("unexpected request to {other}"),
        };
        Ok(Response {
            status: 200,
            headers: vec![],
            body: Box::new(Cursor::new(body)),
        })
    }

    fn base(&self) -> &str {
        "http://server.test"
    }
}

fn enrolled(home: &std::path::Path, role: &str) -> (Device, String) {
    let mut replica = Replica::open(home).unwrap();
    replica.init_identity().unwrap();
    let case_id = CaseId::random().unwrap().to_string();
    for (key, value) in [
        (meta_keys::SERVER, "http://server.test"),
        (meta_keys::CASE_ID, case_id.as_str()),
        (meta_keys::CASE_NAME, "almaty"),
        (meta_keys::ROLE, role),
    ] {
        replica.set_meta(key, value).unwrap();
    }
    (Device::new(replica), case_id)
}

#[test]
fn a_coordinators_full_sync_sends_changes_then_fetches_the_roster_and_the_salt() {
    let home = tempfile::tempdir().unwrap();
    let (mut device, case_id) = enrolled(home.path(), "coordinator");
    let t = Scripted {
        sent: RefCell::new(vec![]),
        busy: false,
        case_id,
        zone: None,
    };
    let mut rounds = 0;
    let synced = device
        .sync_all(&t, 1 << 20, &(), &mut |event| {
            if let SyncEvent::Round(_) = event {
                rounds += 1;
            }
        })
        .unwrap();
    assert_eq!(synced.changes.rounds, 1);
    assert_eq!(rounds, 1);
    assert_eq!(
        *t.sent.borrow(),
        ["POST /v1/sync", "GET /v1/devices", "GET /v1/case"]
    );
    assert_eq!(device.import_salt().unwrap(), "salt from the server");
    assert_eq!(device.enrollment().unwrap().case_name, "almaty");
}

#[test]
fn a_busy_server_is_asked_a_few_times_and_nothing_is_lost() {
    let home = tempfile::tempdir().unwrap();
    let (mut device, case_id) = enrolled(home.path(), "reporter");
    let t = Scripted {
        sent: RefCell::new(vec![]),
        busy: true,
        case_id,
        zone: None,
    };
    let failed = device.sync_all(&t, 1 << 20, &(), &mut |_| {});
    let Err(DeviceError::SyncFailed { failure, left }) = failed else {
        panic!("the sync should fail");
    };
    assert!(
        matches!(
            *failure,
            SyncFailure::Transport(TransportError::Busy { tries: 4, .. })
        ),
        "{failure}"
    );
    assert_eq!(left, 0);
    assert_eq!(t.sent.borrow().len(), 4);
}

#[test]
fn a_device_not_enrolled_says_so() {
    let home = tempfile::tempdir().unwrap();
    let device = Device::new(Replica::open(home.path()).unwrap());
    assert!(matches!(device.enrollment(), Err(DeviceError::NotEnrolled)));
    assert!(matches!(
        device.import_salt(),
        Err(DeviceError::NoImportSalt)
    ));
}

#[test]
fn the_case_time_zone_of_the_last_answer_is_kept_and_a_missing_one_clears_it() {
    let home = tempfile::tempdir().unwrap();
    let (mut device, case_id) = enrolled(home.path(), "reporter");
    assert_eq!(device.case_timezone().unwrap(), None);
    let mut t = Scripted {
        sent: RefCell::new(vec![]),
        busy: false,
        case_id,
        zone: Some("Asia/Almaty"),
    };
    device.sync_all(&t, 1 << 20, &(), &mut |_| {}).unwrap();
    assert_eq!(
        device.case_timezone().unwrap().as_deref(),
        Some("Asia/Almaty")
    );
    t.zone = None;
    device.sync_all(&t, 1 << 20, &(), &mut |_| {}).unwrap();
    assert_eq!(device.case_timezone().unwrap(), None);
}
