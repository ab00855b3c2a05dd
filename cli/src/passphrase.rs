//! `fieldsync device passphrase …`, and where every command gets the
//! passphrase of a home that has one: the file `$FIELDSYNC_PASSPHRASE_FILE`
//! names (its contents, less one trailing newline), else a prompt without
//! echo when stdin is a terminal. The replica asks only when a command first
//! needs a key, so `timeline` and `show` never ask.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;
use fieldsync_core::replica::{KdfCost, Passphrase, Replica};

/// Names a file holding the passphrase.
pub const FILE_VAR: &str = "FIELDSYNC_PASSPHRASE_FILE";
/// Names a file holding the new passphrase, for `passphrase change`.
pub const NEW_FILE_VAR: &str = "FIELDSYNC_NEW_PASSPHRASE_FILE";

#[derive(Subcommand)]
pub enum PassphraseCommand {
    /// Stores this device's key and case keys wrapped under a new
    /// passphrase, read from $FIELDSYNC_PASSPHRASE_FILE or asked twice.
    Set,
    /// Rewraps the keys under a new passphrase (from
    /// $FIELDSYNC_NEW_PASSPHRASE_FILE or asked twice) with the current
    /// default cost, after the current one opened them.
    Change,
    /// Stores the keys in plain form again, after the passphrase opened them.
    Remove,
    /// Says whether this home has a passphrase, and its derivation's
    /// parameters. Asks for nothing.
    Status,
}

pub fn run(home: &Path, replica: &mut Replica, command: PassphraseCommand) -> Result<ExitCode> {
    match command {
        PassphraseCommand::Set => {
            if replica.passphrase()?.is_some() {
                bail!("this device home already has a passphrase; change it with `fieldsync device passphrase change`");
            }
            let new = new_passphrase(FILE_VAR)?;
            replica.set_passphrase(&new, KdfCost::DEFAULT)?;
            println!(
                "passphrase set: the device key and case keys in {} are stored wrapped; commands that need a key read it from ${FILE_VAR} or ask for it",
                home.display()
            );
        }
        PassphraseCommand::Change => {
            if replica.passphrase()?.is_none() {
                bail!("this device home has no passphrase; set one with `fieldsync device passphrase set`");
            }
            replica.unlock()?;
            let new = new_passphrase(NEW_FILE_VAR)?;
            replica.change_passphrase(&new, KdfCost::DEFAULT)?;
            println!("passphrase changed for {}", home.display());
        }
        PassphraseCommand::Remove => {
            if replica.passphrase()?.is_none() {
                bail!("this device home has no passphrase");
            }
            replica.remove_passphrase()?;
            println!(
                "passphrase removed: the keys in {} are stored in plain form again",
                home.display()
            );
        }
        PassphraseCommand::Status => match replica.passphrase()? {
            Some(record) => println!(
                "passphrase: set ({}, {} KiB, {} passes, {} lane(s))",
                record.kdf, record.cost.memory_kib, record.cost.iterations, record.cost.parallelism
            ),
            None => println!("passphrase: not set"),
        },
    }
    Ok(ExitCode::SUCCESS)
}

/// The source every replica the CLI opens asks when it first needs a key.
pub fn source(home: &Path) -> impl FnMut() -> Result<Passphrase, String> + Send + 'static {
    let home = home.display().to_string();
    move || current(&home)
}

fn current(home: &str) -> Result<Passphrase, String> {
    if let Some(passphrase) = from_file(FILE_VAR) {
        return passphrase;
    }
    if !std::io::stdin().is_terminal() {
        return Err(format!(
            "give it in a file named by {FILE_VAR} (e.g. `{FILE_VAR}=/path/to/file fieldsync …`), or run the command in a terminal to be asked for it"
        ));
    }
    let text = rpassword::prompt_password(format!("passphrase for the device home {home}: "))
        .map_err(|e| format!("cannot read the passphrase from the terminal: {e}"))?;
    Passphrase::new(text).map_err(|e| e.to_string())
}

fn from_file(var: &str) -> Option<Result<Passphrase, String>> {
    let path = std::env::var_os(var)?;
    Some(
        std::fs::read(&path)
            .map_err(|e| {
                format!(
                    "cannot read the file {var} names ({}): {e}",
                    Path::new(&path).display()
                )
            })
            .and_then(Passphrase::from_file_contents),
    )
}

/// A new passphrase: from the file `var` names, else typed twice.
fn new_passphrase(var: &str) -> Result<Passphrase> {
    if let Some(passphrase) = from_file(var) {
        return passphrase.map_err(anyhow::Error::msg);
    }
    if !std::io::stdin().is_terminal() {
        bail!("give the new passphrase in a file named by {var}, or run the command in a terminal to be asked for it");
    }
    let mut first = zeroize::Zeroizing::new(rpassword::prompt_password("new passphrase: ")?);
    let again = zeroize::Zeroizing::new(rpassword::prompt_password("the same again: ")?);
    if *first != *again {
        bail!("the two passphrases differ; nothing was changed, try again");
    }
    Ok(Passphrase::new(std::mem::take(&mut *first))?)
}
