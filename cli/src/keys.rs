//! `fieldsync key …`: case keys for attachments. They are made and kept on
//! devices and handed over in person as share codes; nothing here talks to
//! a server.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use fieldsync_core::case_key::CaseKey;
use fieldsync_core::replica::{KeyAdded, Replica};

use crate::commands::{check_case, open};

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Makes the case's first key on this (coordinator's) device and prints
    /// its share code for reporters.
    New {
        #[arg(long, allow_hyphen_values = true)]
        case: String,
        /// Also print the share code as a QR code in the terminal.
        #[arg(long)]
        qr: bool,
    },
    /// Stores a key received as a share code.
    Add {
        #[arg(long, allow_hyphen_values = true)]
        case: String,
        /// The share code (base64url; may begin with "-").
        #[arg(allow_hyphen_values = true)]
        code: String,
    },
    /// Makes the key of a new epoch: new attachments use it, old keys stay
    /// to open old attachments. Share the printed code again.
    Rotate {
        #[arg(long, allow_hyphen_values = true)]
        case: String,
        #[arg(long)]
        qr: bool,
    },
    /// Prints the share codes this device holds for a case, oldest first,
    /// to hand to a new device (a new coordinator needs every epoch).
    Show {
        #[arg(long, allow_hyphen_values = true)]
        case: String,
        #[arg(long)]
        qr: bool,
    },
}

pub fn run(home: &Path, command: KeyCommand) -> Result<ExitCode> {
    let mut replica = open(home)?;
    // Every key command needs the keys: ask for a passphrase now, before
    // any write transaction would wait on a person typing.
    replica.unlock()?;
    match command {
        KeyCommand::New { case, qr } => {
            same_case(&replica, &case)?;
            coordinator_only(&replica, "key new")?;
            let key = replica.new_case_key(&case)?;
            print_code(&case, &key, qr)?;
            eprintln!("hand this code to the case's devices in person; anyone holding it can read the case's attachments");
        }
        KeyCommand::Add { case, code } => {
            same_case(&replica, &case)?;
            let key = CaseKey::from_share_code(&code)?;
            match replica.add_case_key(&case, &key)? {
                KeyAdded::Added => println!("added key epoch {} for case {case}", key.epoch),
                KeyAdded::AlreadyPresent => {
                    println!(
                        "this device already holds key epoch {} for case {case}",
                        key.epoch
                    )
                }
            }
        }
        KeyCommand::Rotate { case, qr } => {
            same_case(&replica, &case)?;
            coordinator_only(&replica, "key rotate")?;
            let key = replica.rotate_case_key(&case)?;
            print_code(&case, &key, qr)?;
            eprintln!(
                "new attachments use epoch {}; hand this code to the case's devices",
                key.epoch
            );
        }
        KeyCommand::Show { case, qr } => {
            let keys = replica.case_keys(&case)?;
            if keys.is_empty() {
                anyhow::bail!("this device holds no key for case {case:?}");
            }
            for key in &keys {
                print_code(&case, key, qr)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Keys are filed under the case name; a device enrolled in another case
/// would never use them, so a mismatch is a mistake worth stopping.
fn same_case(replica: &Replica, case: &str) -> Result<()> {
    if replica.meta("case_name")?.is_some() {
        check_case(&crate::commands::enrollment(replica)?, case)?;
    }
    Ok(())
}

/// A reporter making its own key would seal attachments nobody else can
/// read; keys come from a coordinator.
fn coordinator_only(replica: &Replica, command: &str) -> Result<()> {
    if replica.meta("role")?.as_deref() == Some("reporter") {
        anyhow::bail!("`{command}` is for a coordinator's device; a reporter adds the code its coordinator gives it with `fieldsync key add --case NAME CODE`");
    }
    Ok(())
}

fn print_code(case: &str, key: &CaseKey, qr: bool) -> Result<()> {
    let code = key.share_code();
    println!("{code}");
    if qr {
        let qr = qrcode::QrCode::new(code.as_bytes())
            .context("the share code does not fit a QR code")?;
        let picture = qr
            .render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build();
        println!("case {case}, key epoch {}:\n{picture}", key.epoch);
    }
    Ok(())
}
