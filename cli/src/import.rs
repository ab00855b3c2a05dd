//! `fieldsync import`: reports that arrive some other way (JSON, CSV,
//! narrative text) become ordinary reports of the case; a sync bundle is
//! recognised by its magic and relayed (see `bundle.rs`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Args;

#[derive(Args)]
pub struct ImportArgs {
    /// The case the reports go into (not needed for bundles).
    #[arg(long, allow_hyphen_values = true)]
    pub case: Option<String>,
    /// auto (by extension and content), json, csv or text.
    #[arg(long, default_value = "auto")]
    pub format: String,
    /// Print the summary without writing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// CSV: COLUMN=FIELD for a header the importer does not know
    /// (FIELD may be `ignore`). Repeat for several.
    #[arg(long = "map", allow_hyphen_values = true)]
    pub map: Vec<String>,
    /// Time zone for times written without one: an IANA name
    /// (Asia/Almaty) or an offset (+06:00).
    #[arg(long, allow_hyphen_values = true)]
    pub timezone: Option<String>,
    /// Images, audio and video named among FILE become encrypted
    /// attachments of this report.
    #[arg(long)]
    pub report: Option<String>,
    #[arg(long)]
    pub json: bool,
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(home: &Path, args: ImportArgs) -> Result<ExitCode> {
    let (bundles, others): (Vec<&PathBuf>, Vec<&PathBuf>) =
        args.files.iter().partition(|f| crate::bundle::is_bundle(f));
    if !others.is_empty() {
        bail!(
            "importing {} is not available in this build yet",
            others[0].display()
        );
    }
    for file in bundles {
        crate::bundle::import(home, file, args.dry_run, args.json)?;
    }
    Ok(ExitCode::SUCCESS)
}
