//! Sync scenarios over the real device replica (SQLite in memory) and the
//! in-memory server store, with every message passed through its JSON
//! encoding.

mod convergence;
mod scenarios;
mod web_session;

use std::convert::Infallible;

use chrono::{DateTime, FixedOffset};

use crate::document::NewReport;
use crate::ids::{CaseId, ReportId};
use crate::model::DeviceRole;
use crate::protocol::{SyncRequest, SyncResponse};
use crate::replica::Replica;
use crate::sync::memory::MemoryStore;
use crate::sync::policy::Member;
use crate::sync::server::{handle_sync, ServerLimits};
use crate::PublicKey;

pub(crate) fn t(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

pub(crate) struct Device {
    pub replica: Replica,
    pub key: PublicKey,
    pub role: DeviceRole,
}

pub(crate) struct World {
    pub case: CaseId,
    pub server: MemoryStore,
    pub devices: Vec<Device>,
    pub limits: ServerLimits,
}

impl World {
    pub fn new(roles: &[DeviceRole]) -> Self {
        let case = CaseId::random().unwrap();
        let mut server = MemoryStore::new(case.as_str());
        let devices = roles
            .iter()
            .map(|&role| {
                let mut replica = Replica::open_in_memory().unwrap();
                replica.init_identity().unwrap();
                let key = replica.device_key().unwrap().unwrap().public_key();
                server.enroll(key, role);
                Device { replica, key, role }
            })
            .collect();
        Self {
            case,
            server,
            devices,
            limits: ServerLimits::default(),
        }
    }

    pub fn member(&self, device: usize) -> Member {
        self.server.members[&self.devices[device].key].clone()
    }

    pub fn new_report(&self, title: &str) -> NewReport {
        NewReport::new(
            ReportId::random().unwrap(),
            self.case.clone(),
            title,
            t("2016-05-21T10:40:00+06:00"),
        )
    }

    pub fn record(&mut self, device: usize, title: &str) -> ReportId {
        let new = self.new_report(title);
        self.devices[device].replica.create_report(&new).unwrap()
    }

    /// The server's answer to a request, through the JSON encoding both ways.
    pub fn serve(&mut self, device: usize, request: &SyncRequest) -> SyncResponse {
        let member = self.member(device);
        let request = SyncRequest::from_json(&request.to_json()).unwrap();
        let response = handle_sync(&mut self.server, &member, &request, self.limits).unwrap();
        SyncResponse::from_json(&response.to_json()).unwrap()
    }

    /// The server's answer to a request sent through the commit route of
    /// the live web session whose key is `session`.
    pub fn serve_in_session(
        &mut self,
        device: usize,
        request: &SyncRequest,
        session: &crate::PublicKey,
    ) -> Result<SyncResponse, crate::sync::server::SyncError<Infallible>> {
        let member = self.member(device);
        let request = SyncRequest::from_json(&request.to_json()).unwrap();
        crate::sync::server::handle_session_commit(
            &mut self.server,
            &member,
            &request,
            self.limits,
            session,
        )
    }

    /// A full sync of one device, as many rounds as it takes.
    pub fn sync(&mut self, device: usize, max_bytes: usize) -> crate::replica::SyncSummary {
        let member = self.member(device);
        let limits = self.limits;
        let server = &mut self.server;
        self.devices[device]
            .replica
            .sync(
                max_bytes,
                |req| -> Result<SyncResponse, Infallible> {
                    let req = SyncRequest::from_json(&req.to_json()).unwrap();
                    let resp = handle_sync(server, &member, &req, limits).unwrap();
                    Ok(SyncResponse::from_json(&resp.to_json()).unwrap())
                },
                |_| {},
            )
            .unwrap()
    }
}
