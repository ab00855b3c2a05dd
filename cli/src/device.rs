//! `fieldsync device`: this device's identity, enrollment and passphrase.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use fieldsync_core::device::{self, Device};
use fieldsync_core::model::DeviceRole;
use fieldsync_core::replica::Replica;

use crate::client::{client_for, keep_clock_offset};
use crate::home::{enrollment, open};

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Makes this device's key pair and prints its device id.
    Init,
    /// Enrolls this device with a server using a one-time token.
    Enroll {
        #[arg(long)]
        server: String,
        /// Tokens may begin with "-".
        #[arg(long, allow_hyphen_values = true)]
        token: String,
        /// Allow a plain http:// server that is not this machine (a lab
        /// network you control); serve over TLS instead.
        #[arg(long)]
        insecure_http: bool,
        /// The case key fingerprint the invite carries: the server's case
        /// public key is taken only if it matches. Without it the key is
        /// taken on trust, with a warning.
        #[arg(long, allow_hyphen_values = true)]
        case_key_fingerprint: Option<String>,
    },
    /// Protects this device's keys with a passphrase (for coordinators'
    /// laptops): set, change, remove, status.
    #[command(subcommand)]
    Passphrase(crate::passphrase::PassphraseCommand),
}

pub fn run(home: &Path, command: DeviceCommand) -> Result<ExitCode> {
    let mut replica = open(home)?;
    match command {
        DeviceCommand::Init => {
            // Asked before the write, so no transaction waits on a person.
            replica.unlock()?;
            println!("{}", replica.init_identity()?)
        }
        DeviceCommand::Passphrase(command) => {
            return crate::passphrase::run(home, &mut replica, command)
        }
        DeviceCommand::Enroll {
            server,
            token,
            insecure_http,
            case_key_fingerprint,
        } => {
            crate::transport::check_server_url(&server, insecure_http, "enroll")?;
            let key = replica
                .device_key()?
                .context("this device has no identity yet; run `fieldsync device init` first")?;
            let mut me = Device::new(replica);
            me.check_not_enrolled()?;
            let pin = case_key_fingerprint
                .as_deref()
                .map(crate::keys::parse_fingerprint)
                .transpose()?;
            let public_key = key.public_key();
            let client = client_for(me.replica(), &server, key)?;
            let enrolled = device::enroll(&client, &public_key, token.trim())?;
            keep_clock_offset(&mut me, &client)?;
            me.record_enrollment(&server, &enrolled)?;
            let mut replica = me.into_replica();
            if let Some(pin) = &pin {
                replica.set_meta(crate::keys::PINNED_FINGERPRINT, pin)?;
            }
            println!(
                "enrolled device {} as {} of case {}",
                enrolled.device_id,
                enrolled.role.as_str(),
                enrolled.case_name
            );
            if enrolled.role == DeviceRole::Reporter {
                return take_enrollment_keys(&mut replica, &enrolled, pin.as_deref());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A reporter's device takes the case public key it enrolled with: the one
/// its invite's fingerprint names, or, without one, what the server gave,
/// on trust. A fingerprint no offered key matches fails the command (the
/// device stays enrolled and takes the right key when it arrives).
fn take_enrollment_keys(
    replica: &mut Replica,
    enrolled: &fieldsync_core::protocol::EnrollResponse,
    pin: Option<&str>,
) -> Result<ExitCode> {
    let enrollment = enrollment(replica)?;
    let mut report = crate::keys::KeyRefresh::default();
    crate::keys::take(replica, &enrollment, &enrolled.case_keys, &mut report)?;
    let trusted = !replica.case_public_keys(&enrollment.case_name)?.is_empty();
    match pin {
        Some(pin) if !trusted => {
            if enrolled.case_keys.is_empty() {
                eprintln!("the server has no case key yet: this device will take the one with fingerprint {pin} when it syncs, and cannot seal attachments until then");
            } else {
                bail!("the server's case key does not match the fingerprint your invite gives ({pin}): the server may be substituting its own key. This device is enrolled but takes no key and cannot seal attachments until a key with that fingerprint arrives on a later `fieldsync sync`. Tell your coordinator, and check the fingerprint was copied whole");
            }
        }
        Some(pin) => eprintln!("the case key matches your invite's fingerprint {pin}"),
        None if !trusted => eprintln!("warning: the case has no published key yet; this device takes the first one the server gives on a later sync, on trust. Next time enroll with --case-key-fingerprint from your invite"),
        None => eprintln!("warning: enrolled without --case-key-fingerprint: the case key above was taken on trust from the server. Check its fingerprint with your coordinator"),
    }
    Ok(ExitCode::SUCCESS)
}
