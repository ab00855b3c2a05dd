//! Issue 14's attacks, one file per finding, each against real processes.

mod passphrase;
