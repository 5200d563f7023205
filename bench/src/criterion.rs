//! The micro-benchmark table of RESULTS.md, read from Criterion's output directory
//! (`target/criterion/<group>/<bench>/new/{benchmark,estimates}.json`).

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

struct Bench {
    id: String,
    mean_ns: f64,
    throughput: Option<(String, f64)>,
}

fn read(dir: &Path, found: &mut Vec<Bench>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let new = path.join("new");
        let json = |name: &str| -> Option<Value> {
            serde_json::from_str(&std::fs::read_to_string(new.join(name)).ok()?).ok()
        };
        match (json("benchmark.json"), json("estimates.json")) {
            (Some(b), Some(e)) => {
                let throughput = b
                    .get("throughput")
                    .and_then(Value::as_object)
                    .and_then(|t| {
                        let (kind, n) = t.iter().next()?;
                        Some((kind.clone(), n.as_f64()?))
                    });
                found.push(Bench {
                    id: b
                        .get("full_id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    mean_ns: e
                        .pointer("/mean/point_estimate")
                        .and_then(Value::as_f64)
                        .unwrap_or(f64::NAN),
                    throughput,
                });
            }
            _ => read(&path, found),
        }
    }
}

/// Appends the micro-benchmark section.
pub fn section(md: &mut String, dir: &Path) {
    let mut found = Vec::new();
    read(dir, &mut found);
    if found.is_empty() {
        return;
    }
    found.sort_by(|a, b| a.id.cmp(&b.id));
    let _ = writeln!(
        md,
        "## Micro-benchmarks (Criterion, `cargo bench -p place-bench`)\n"
    );
    let _ = writeln!(md, "| benchmark | mean time | throughput |");
    let _ = writeln!(md, "| --- | --- | --- |");
    for b in found {
        let per_sec = 1e9 / b.mean_ns;
        let throughput = match b.throughput {
            Some((kind, n)) if kind == "Bytes" => format!("{:.0} MB/s", n * per_sec / 1e6),
            Some((_, n)) => format!("{} elements/s", human(n * per_sec)),
            None => String::new(),
        };
        let _ = writeln!(md, "| {} | {} | {throughput} |", b.id, duration(b.mean_ns));
    }
    md.push('\n');
}

fn duration(ns: f64) -> String {
    match ns {
        n if n < 1e3 => format!("{n:.1} ns"),
        n if n < 1e6 => format!("{:.2} µs", n / 1e3),
        n if n < 1e9 => format!("{:.2} ms", n / 1e6),
        n => format!("{:.2} s", n / 1e9),
    }
}

fn human(n: f64) -> String {
    match n {
        n if n >= 1e9 => format!("{:.2} G", n / 1e9),
        n if n >= 1e6 => format!("{:.2} M", n / 1e6),
        n if n >= 1e3 => format!("{:.1} k", n / 1e3),
        n => format!("{n:.0}"),
    }
}
