//! Writes the fuzz targets' generated seed corpora:
//! `cargo run -p fieldsync-tests --bin fuzz-seeds -- tests/fuzz/seeds`.
//! (The import parsers' seeds are committed files, not generated.)

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "tests/fuzz/seeds".into()),
    );
    for (target, name, bytes) in fieldsync_fuzz_bodies::seeds() {
        let target_dir = dir.join(target);
        std::fs::create_dir_all(&target_dir)?;
        std::fs::write(target_dir.join(&name), bytes)?;
        println!("{target}/{name}");
    }
    Ok(())
}
