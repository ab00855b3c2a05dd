//! The `fieldsync` command: argument parsing and printing only. Every
//! command calls `fieldsync-core` or `fieldsync-server`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use fieldsync_core::replica::Replica;

#[derive(Parser)]
#[command(
    name = "fieldsync",
    version,
    about = "Record events offline and sync them to a fieldsync server"
)]
struct Cli {
    /// The device home (replica and identity). Defaults to $FIELDSYNC_HOME,
    /// else the platform data directory.
    #[arg(long, global = true, env = "FIELDSYNC_HOME")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// This device's identity.
    #[command(subcommand)]
    Device(DeviceCommand),
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Makes this device's key pair and prints its device id.
    Init,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let home = device_home(cli.home)?;
    match cli.command {
        Command::Device(DeviceCommand::Init) => {
            let mut replica = Replica::open(&home)?;
            let id = replica.init_identity()?;
            println!("{id}");
        }
    }
    Ok(())
}

fn device_home(flag: Option<PathBuf>) -> Result<PathBuf> {
    match flag {
        Some(home) => Ok(home),
        None => Ok(dirs::data_dir()
            .context("no --home given, FIELDSYNC_HOME is not set and this platform has no data directory; pass --home DIR")?
            .join("fieldsync")),
    }
}
