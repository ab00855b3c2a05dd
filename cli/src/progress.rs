//! Progress bars on stderr for the core's transfers.

use std::cell::OnceCell;

use fieldsync_core::device::{OutboxProgress, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar drawn once the total is known (nothing at all when there is
/// nothing to transfer), hidden when `quiet`.
pub struct Bar {
    quiet: bool,
    verb: &'static str,
    bar: OnceCell<ProgressBar>,
}

impl Bar {
    pub fn new(quiet: bool, verb: &'static str) -> Self {
        Self {
            quiet,
            verb,
            bar: OnceCell::new(),
        }
    }

    /// A bar over `total` bytes, drawn at once.
    pub fn with_total(total: u64, quiet: bool, verb: &'static str) -> Self {
        let bar = Self::new(quiet, verb);
        bar.begin(total);
        bar
    }

    fn with(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(bar) = self.bar.get() {
            f(bar);
        }
    }
}

impl Progress for Bar {
    fn set_position(&self, bytes: u64) {
        self.with(|b| b.set_position(bytes));
    }

    fn inc(&self, bytes: u64) {
        self.with(|b| b.inc(bytes));
    }

    fn note(&self, line: &str) {
        self.with(|b| b.println(line));
    }
}

impl OutboxProgress for Bar {
    fn begin(&self, total: u64) {
        self.bar.get_or_init(|| bar(total, self.quiet, self.verb));
    }

    fn attachment(&self, id: &str) {
        self.with(|b| b.set_message(format!("attachment {}", id.get(..8).unwrap_or(id))));
    }

    fn finish(&self) {
        self.with(ProgressBar::finish_and_clear);
    }
}

fn bar(total: u64, quiet: bool, verb: &str) -> ProgressBar {
    let progress = ProgressBar::with_draw_target(
        Some(total),
        if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    progress.set_style(
        ProgressStyle::with_template(&format!(
            "{verb} {{msg}} [{{bar:30}}] {{bytes}}/{{total_bytes}} {{bytes_per_sec}} eta {{eta}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    progress
}
