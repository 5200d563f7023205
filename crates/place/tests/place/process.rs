//! Tests of the `place` binary as a process: `kill -9` under load loses no acknowledged pixel,
//! SIGTERM shuts down cleanly, bad configuration exits 64 naming the setting.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use place_protocol::{ClientMessage, ErrorCode, RequestId, ServerMessage, TileRequest};
use place_testkit::{guest, Client};
use place_tiles::TileId;
use tokio::time::Instant;

const SIDE: u32 = 256;
const CLIENTS: u32 = 16;

struct Process {
    child: Child,
    base: String,
    /// The `/metrics` URL printed with `--metrics-listen`.
    metrics: Option<String>,
}

fn start(data_dir: &std::path::Path) -> Process {
    start_with(data_dir, &[])
}

/// [`start`] with more command-line settings.
fn start_with(data_dir: &std::path::Path, extra: &[&str]) -> Process {
    let mut child = Command::new(env!("CARGO_BIN_EXE_place"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--cooldown-secs",
            "0",
            "--guest-rate-per-minute",
            "0",
            // Load from one address: no per-network budget; cheap guests.
            "--placements-per-address-per-minute",
            "0",
            "--guest-pow-bits",
            "8",
        ])
        .args(["--width", &SIDE.to_string(), "--height", &SIDE.to_string()])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn place serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut stdout = BufReader::new(stdout);
    let (mut base, mut metrics) = (None, None);
    while base.is_none() {
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read the start-up lines");
        let line = line.trim();
        assert!(!line.is_empty(), "place serve ended before listening");
        if let Some(address) = line.strip_prefix("listening on ") {
            base = Some(address.to_string());
        } else if let Some(address) = line.strip_prefix("metrics on ") {
            metrics = Some(address.to_string());
        }
    }
    let base = base.unwrap_or_default();
    Process {
        child,
        base,
        metrics,
    }
}

/// Pixel `k` of client `i`: every client paints its own pixels, each pixel once, so an
/// acknowledged pixel must keep its colour.
fn pixel(i: u32, k: u32) -> (u32, u32, u8) {
    let p = i + CLIENTS * k;
    (p % SIDE, p / SIDE, 1 + (k % 15) as u8)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_pixel() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start(dir.path());
    let ws = server.base.replace("http://", "ws://") + "/ws";
    let acked: Arc<Mutex<Vec<(u32, u32, u8)>>> = Arc::default();

    let mut players = Vec::new();
    for i in 0..CLIENTS {
        let cookie = guest(&server.base).await;
        let mut client = Client::connect(&ws, Some(&cookie), i % 2 == 0).await;
        assert!(matches!(client.recv().await, ServerMessage::Welcome(_)));
        let acked = Arc::clone(&acked);
        players.push(tokio::spawn(async move {
            for k in 0.. {
                let (x, y, color) = pixel(i, k);
                let place = ClientMessage::Place {
                    x: x.into(),
                    y: y.into(),
                    color: color.into(),
                    request_id: Some(RequestId::Number(k)),
                };
                client.send(&place).await;
                match client.try_recv(Duration::from_secs(5)).await {
                    Some(ServerMessage::Success { .. }) => {
                        acked.lock().expect("lock").push((x, y, color))
                    }
                    // A placement the store could not make durable in time is refused
                    // unwritten (retryable): not acknowledged, so nothing to check.
                    Some(ServerMessage::Error(e)) if e.code == ErrorCode::Unavailable => {}
                    Some(other) => panic!("unexpected answer {other:?}"),
                    None => return, // the server died
                }
                // Stay under the per-connection frame limit (50 a second).
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }));
    }
    // Kill once the load is well under way: at least 1.5 s and 300 acknowledged pixels
    // (a slow CI disk may need longer), or 20 s at most.
    let load_started = Instant::now();
    while load_started.elapsed() < Duration::from_millis(1500)
        || (acked.lock().expect("lock").len() < 300
            && load_started.elapsed() < Duration::from_secs(20))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.child.kill().expect("kill -9"); // SIGKILL on Unix
    server.child.wait().expect("reap");
    for p in players {
        p.await.expect("player");
    }
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() > 100,
        "the load placed only {} pixels",
        acked.len()
    );

    let started = Instant::now();
    let mut server = start(dir.path());
    let restart = started.elapsed();
    let canvas = reqwest::get(format!("{}/api/v1/canvas", server.base))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    let lost: Vec<_> = acked
        .iter()
        .filter(|(x, y, c)| canvas[(*y * SIDE + *x) as usize] != *c)
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged pixels lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );

    // Seqs continue: each tile's seq counts at least its acknowledged placements.
    let mut per_tile: HashMap<TileId, u64> = HashMap::new();
    for (x, y, _) in &acked {
        *per_tile
            .entry(TileId::new((x / 64) as u16, (y / 64) as u16))
            .or_default() += 1;
    }
    let cookie = guest(&server.base).await;
    let mut c = Client::connect(
        &(server.base.replace("http://", "ws://") + "/ws"),
        Some(&cookie),
        false,
    )
    .await;
    assert!(matches!(c.recv().await, ServerMessage::Welcome(_)));
    c.send(&ClientMessage::Subscribe {
        tiles: per_tile
            .keys()
            .map(|&tile| TileRequest { tile, seq: None })
            .collect(),
    })
    .await;
    for _ in 0..per_tile.len() {
        match c.recv().await {
            ServerMessage::Tile { tile, seq, .. } => assert!(
                seq >= per_tile[&tile],
                "tile {tile} seq {seq} < {} acked",
                per_tile[&tile]
            ),
            other => panic!("expected a tile, got {other:?}"),
        }
    }
    println!(
        "{} pixels acknowledged before kill -9, none lost; restart took {restart:?}",
        acked.len()
    );
    server.child.kill().expect("kill");
    server.child.wait().expect("reap");
}

#[tokio::test]
async fn sigterm_closes_sockets_with_1001_and_keeps_the_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start(dir.path());
    let ws = server.base.replace("http://", "ws://") + "/ws";
    let cookie = guest(&server.base).await;
    let mut client = Client::connect(&ws, Some(&cookie), true).await;
    assert!(matches!(client.recv().await, ServerMessage::Welcome(_)));
    client
        .send(&ClientMessage::Place {
            x: 3,
            y: 4,
            color: 9,
            request_id: None,
        })
        .await;
    assert!(matches!(client.recv().await, ServerMessage::Success { .. }));

    let pid = server.child.id().to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    assert!(client.try_recv(Duration::from_secs(10)).await.is_none());
    assert_eq!(
        client.closed.as_ref().map(|f| u16::from(f.code)),
        Some(1001),
        "closed with going-away"
    );
    let exit = server.child.wait().expect("wait");
    assert!(exit.success(), "clean exit, got {exit}");

    let mut server = start(dir.path());
    let canvas = reqwest::get(format!("{}/api/v1/canvas", server.base))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    assert_eq!(canvas[(4 * SIDE + 3) as usize], 9);
    server.child.kill().expect("kill");
    server.child.wait().expect("reap");
}

#[tokio::test]
async fn metrics_listen_serves_metrics_apart_from_the_public_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = start_with(dir.path(), &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = server
        .metrics
        .clone()
        .expect("the metrics address is printed");
    let http = reqwest::Client::new();
    let public = http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .expect("public /metrics");
    assert_eq!(public.status(), 404, "the public address serves no metrics");
    let apart = http.get(&metrics).send().await.expect("metrics address");
    assert_eq!(apart.status(), 200);
    let text = apart.text().await.expect("metrics text");
    assert!(text.contains("rplace_"), "{text}");
    let page = http
        .get(metrics.trim_end_matches("metrics"))
        .send()
        .await
        .expect("metrics address, another path");
    assert_eq!(page.status(), 404, "only /metrics is served there");
    server.child.kill().expect("kill");
    server.child.wait().expect("wait");
}

#[test]
fn bad_configuration_exits_64_naming_the_setting() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (args, setting) in [
        (vec!["--width", "0"], "width"),
        (vec!["--listen", "nowhere"], "listen"),
        (vec!["--cooldown-secs", "100000"], "cooldown_secs"),
        (vec!["--colors", "1"], "colors"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_place"))
            .arg("serve")
            .args(&args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .expect("run place");
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("`{setting}`")),
            "{args:?}: {stderr}"
        );
    }
    let config = dir.path().join("place.toml");
    std::fs::write(&config, "width = 64\nnot_a_setting = 1\n").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_place"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("run place");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_a_setting"));
}

/// Runs `place admin create-user` with `password` piped to its standard input.
fn create_user(args: &[&str], password: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_place"))
        .args(["admin", "create-user"])
        .args(args)
        .env_remove("PLACE_CLUSTER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn place admin");
    let mut stdin = child.stdin.take().expect("stdin");
    // A refused command may exit before it reads the password: its output says why.
    if let Err(e) = stdin.write_all(format!("{password}\n").as_bytes()) {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "write the password: {e}"
        );
    }
    drop(stdin);
    child.wait_with_output().expect("place admin")
}

#[tokio::test]
async fn admin_create_user_makes_an_administrator_who_can_log_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8 path");
    let out = create_user(&["root", "--admin", "--data-dir", data], "root's password");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("created administrator root"), "{stdout}");
    assert!(!stdout.contains("root's password"));

    // Usage errors exit 64 and make nothing; a taken name fails without being a usage error.
    for (args, password) in [
        (vec!["ab", "--data-dir", data], "long enough"),
        (vec!["someone", "--data-dir", data], "short"),
        (vec!["someone"], "long enough"),
        (vec!["someone", "--cluster", "Bad-Name"], "long enough"),
    ] {
        let out = create_user(&args, password);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
    }
    let taken = create_user(&["ROOT", "--data-dir", data], "another password");
    assert_eq!(taken.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&taken.stderr).contains("taken"));

    let server = crate::common::Server::start(crate::common::config(dir.path(), 64, 64, 0)).await;
    let login =
        place_testkit::credentials(&server.base, "login", "root", "root's password", None).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(login.body["isAdmin"], true);
    assert_eq!(login.body["isGuest"], false);
    let cookie = login.cookie().expect("session");
    assert_eq!(
        place_testkit::me(&server.base, &cookie).await.body["isAdmin"],
        true
    );
    server.stop().await;
}
