//! Replays the fuzz targets' committed seed corpora and every input under
//! `tests/fuzz/regressions/` through the same functions the cargo-fuzz
//! targets call (`fieldsync_fuzz_bodies`), so the fixes for what the
//! fuzzer found stay fixed without nightly. Each input's directory names
//! its target.

use std::path::{Path, PathBuf};

use fieldsync_fuzz_bodies::{seeds, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Runs every file under `dir/<target>/` through its target; returns how
/// many ran per target.
fn check(dir: &Path) -> Vec<(&'static str, usize)> {
    let mut counts = Vec::new();
    for (target, run) in TARGETS {
        let mut ran = 0;
        let Ok(entries) = std::fs::read_dir(dir.join(target)) else {
            counts.push((*target, 0));
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let bytes = std::fs::read(&path).unwrap();
            eprintln!("{}", path.display());
            run(&bytes);
            ran += 1;
        }
        counts.push((*target, ran));
    }
    counts
}

#[test]
fn every_committed_seed_passes_its_fuzz_target() {
    let counts = check(&fuzz_dir().join("seeds"));
    for (target, ran) in counts {
        assert!(ran > 0, "fuzz target {target} has no committed seed");
    }
}

#[test]
fn every_fuzzer_finding_stays_fixed() {
    let regressions = fuzz_dir().join("regressions");
    for entry in std::fs::read_dir(&regressions).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            name == "README.md" || TARGETS.iter().any(|(t, _)| *t == name),
            "regressions/{name} is not named for a fuzz target"
        );
    }
    check(&regressions);
}

#[test]
fn the_generated_seeds_pass_their_targets() {
    for (target, name, bytes) in seeds() {
        let (_, run) = TARGETS.iter().find(|(t, _)| *t == target).unwrap();
        eprintln!("{target}/{name}");
        run(&bytes);
    }
}
