//! `fieldsync web-login`: a one-time link that opens the review web app in
//! a browser as this coordinator device.
//!
//! The link's fragment carries the login certificate, the session key's
//! seed and the case keys. Browsers never send a fragment to a server, so
//! the server learns only the certificate, which the page posts to start
//! the session. Treat the link like the case key itself: anyone who opens
//! it within its minutes reviews as this device and reads the attachments.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use clap::Args;
use fieldsync_core::model::DeviceRole;
use fieldsync_core::web_login::{LoginCertificate, SessionKey};

use crate::home::{enrollment, open};

#[derive(Args)]
pub struct WebLoginArgs {
    /// Minutes within which the link must be opened.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    minutes: u64,
    /// Hours the browser session lasts once opened.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=72))]
    hours: u64,
    /// Print {"link", "expires_at", "session_until"} as JSON.
    #[arg(long)]
    json: bool,
    /// Allow a plain http:// server that is not this machine (a lab
    /// network you control); serve over TLS instead.
    #[arg(long)]
    insecure_http: bool,
}

pub fn run(home: &Path, args: WebLoginArgs) -> Result<ExitCode> {
    let replica = open(home)?;
    let enrolled = enrollment(&replica)?;
    if enrolled.role != DeviceRole::Coordinator {
        bail!("the review web app is for coordinators; this device is enrolled as a reporter");
    }
    crate::transport::check_server_url(
        &enrolled.server,
        args.insecure_http,
        "open the review page with this device's keys",
    )?;
    let key = replica
        .device_key()?
        .context("this device has no identity; run `fieldsync device init` first")?;
    let keys = replica.case_keys(&enrolled.case_name)?;
    if keys.is_empty() {
        eprintln!("note: this device holds no case key, so the page will list attachments but cannot decrypt them; add one with `fieldsync key add`");
    }
    let session = SessionKey::generate()?;
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    let login_until = now + args.minutes * 60;
    let session_until = now + args.hours * 3600;
    let cert = LoginCertificate::issue(&key, &session.public_key(), login_until, session_until)?;
    let codes: Vec<String> = keys.iter().map(|k| k.share_code()).collect();
    let link = format!(
        "{}/login#t={}&k={}&s={}",
        enrolled.server.trim_end_matches('/'),
        cert.to_token(),
        codes.join(","),
        URL_SAFE_NO_PAD.encode(session.seed()),
    );
    let at = |secs: u64| {
        chrono::DateTime::from_timestamp(secs as i64, 0)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default()
    };
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "link": link,
                "expires_at": at(login_until),
                "session_until": at(session_until),
            })
        );
    } else {
        println!("{link}");
        eprintln!(
            "open this link within {} minutes; it works once, and the session lasts until {}. Anyone holding it can review as this device and read the case's attachments: don't send it over a channel you don't trust",
            args.minutes,
            at(session_until)
        );
    }
    Ok(ExitCode::SUCCESS)
}
