//! Builds the browser client (web/, TypeScript with Vite) into `$OUT_DIR/web`
//! for `src/lib.rs` to embed.
//!
//! - `PLACE_WEB_DIST=/path`: use an already built client (packagers); npm is not run.
//! - Otherwise Node.js and npm are required: `npm ci` runs when `web/node_modules`
//!   is missing or older than `web/package-lock.json`, then
//!   `npm run build -- --outDir $OUT_DIR/web`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

/// Env var naming a prebuilt client directory (holding index.html).
const DIST_ENV: &str = "PLACE_WEB_DIST";
/// Env var read by `#[folder]` in src/lib.rs.
const DIR_ENV: &str = "PLACE_WEB_DIST_DIR";

fn main() {
    println!("cargo:rerun-if-env-changed={DIST_ENV}");
    let dist = match env::var_os(DIST_ENV) {
        Some(prebuilt) => prebuilt_dist(PathBuf::from(prebuilt)),
        None => build_with_npm(),
    };
    println!("cargo:rustc-env={DIR_ENV}={}", dist.display());
}

fn prebuilt_dist(dir: PathBuf) -> PathBuf {
    let dir =
        fs::canonicalize(&dir).unwrap_or_else(|e| panic!("{DIST_ENV}={}: {e}", dir.display()));
    assert!(
        dir.join("index.html").is_file(),
        "{DIST_ENV}={} holds no index.html: point it at the output of `npm run build` in web/",
        dir.display()
    );
    println!("cargo:rerun-if-changed={}", dir.display());
    dir
}

fn build_with_npm() -> PathBuf {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let web = manifest.join("../../web");
    let web = fs::canonicalize(&web).unwrap_or_else(|e| panic!("{}: {e}", web.display()));
    for input in [
        "src",
        "index.html",
        "public",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
    ] {
        // A path that does not exist would make cargo rerun this script on every build.
        if web.join(input).exists() {
            println!("cargo:rerun-if-changed={}", web.join(input).display());
        }
    }

    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    match Command::new(npm)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => {}
        _ => panic!(
            "building place-web needs Node.js (20.19 or later) and npm on PATH to build the \
             browser client in web/; install them, or set {DIST_ENV}=/path/to/built/client"
        ),
    }

    if node_modules_stale(&web) {
        run(Command::new(npm)
            .arg("ci")
            .arg("--no-audit")
            .arg("--no-fund")
            .current_dir(&web));
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("web");
    run(Command::new(npm)
        .args(["run", "build", "--", "--emptyOutDir", "--outDir"])
        .arg(&out)
        .current_dir(&web));
    assert!(
        out.join("index.html").is_file(),
        "npm run build wrote no index.html to {}",
        out.display()
    );
    out
}

/// `npm ci` is needed when node_modules is missing or older than the lock file.
fn node_modules_stale(web: &Path) -> bool {
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let lock = modified(&web.join("package-lock.json")).unwrap_or(SystemTime::UNIX_EPOCH);
    // npm writes node_modules/.package-lock.json on every install.
    let installed = modified(&web.join("node_modules/.package-lock.json"));
    installed.is_none_or(|installed| installed < lock)
}

fn run(cmd: &mut Command) {
    // npm's output goes to stderr: cargo reads a build script's stdout as instructions.
    let status = cmd
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed with {status}");
}
