//! `bench/RESULTS.md` is written by `bench/run`, which appends the hand-measured sections and the
//! analysis from their own files (`bench/history.md`, ..., `bench/analysis.md`). A section edited
//! in `RESULTS.md` alone is lost at the next `bench/run`: it happened to sections 12 to 18. This
//! test fails when a source's text is not in `RESULTS.md` as it stands in the source, so the two
//! are edited together.

use std::path::{Path, PathBuf};

fn bench_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The hand-written sources, read from `bench/run`'s own list so that there is one list.
fn hand_sources() -> Vec<PathBuf> {
    let run = std::fs::read_to_string(bench_dir().join("run")).expect("bench/run");
    let line = run
        .lines()
        .find(|l| l.trim_start().starts_with("for f in ") && l.contains("bench/analysis.md"))
        .expect("bench/run lists its hand-written sections on one `for f in ...` line");
    let list = line
        .trim_start()
        .trim_start_matches("for f in ")
        .split(';')
        .next()
        .expect("the list");
    let root = bench_dir().join("..");
    list.split_whitespace().map(|f| root.join(f)).collect()
}

#[test]
fn every_hand_measured_section_is_in_results_as_in_its_source() {
    let results = std::fs::read_to_string(bench_dir().join("RESULTS.md")).expect("RESULTS.md");
    let sources = hand_sources();
    assert!(sources.len() >= 2, "{sources:?}");
    let mut last_at = 0;
    for source in sources {
        let Ok(text) = std::fs::read_to_string(&source) else {
            continue; // bench/run skips a source that is not there
        };
        let at = results.find(text.trim()).unwrap_or_else(|| {
            panic!(
                "{} differs from its text in bench/RESULTS.md: edit both (or re-run bench/run)",
                source.display()
            )
        });
        assert!(at >= last_at, "{} is out of order", source.display());
        last_at = at;
    }
}
