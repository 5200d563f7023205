//! Smoke runs of `loadgen` against a real `place serve` started in this process: a few hundred
//! players for a few seconds, and every delivery check must pass.

use std::time::Duration;

use clap::Parser;
use loadgen::{Args, Report};
use place::config::{CanvasSection, EdgeSection, ServeConfig, ShardSection};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Starts `place serve` on an ephemeral port, runs loadgen with `flags` against it, stops it.
async fn run_against_server(cooldown_secs: u64, max_tiles: usize, flags: &[&str]) -> Report {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ServeConfig {
        data_dir: dir.path().to_path_buf(),
        canvas: CanvasSection {
            width: 512,
            height: 512,
            ..CanvasSection::default()
        },
        edge: EdgeSection {
            listen: "127.0.0.1:0".into(),
            cooldown_secs,
            guest_rate_per_minute: 0,
            // Every player is 127.0.0.1: lift the per-network limits meant for the internet, and
            // pay a cheap proof of work per guest.
            max_connections_per_address: 1_000_000,
            max_websockets_per_address: 1_000_000,
            placements_per_address_per_minute: 0,
            guest_pow_bits: 4,
            max_tiles_per_client: max_tiles,
            ..EdgeSection::default()
        },
        shard: ShardSection {
            batch_window_ms: 10,
            ..ShardSection::default()
        },
        ..ServeConfig::default()
    }
    .validate()
    .expect("valid config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let services = place::serve::start(&config).await.expect("server starts");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(services.serve(listener, async {
        let _ = stopped.await;
    }));

    let url = format!("ws://{addr}");
    let mut argv = vec!["loadgen", "--url", &url, "--quiet"];
    argv.extend_from_slice(flags);
    let args = Args::try_parse_from(argv).expect("valid flags");
    let report = tokio::time::timeout(Duration::from_secs(60), loadgen::run(&args, false))
        .await
        .expect("the run is bounded")
        .expect("the run completes");

    let _ = stop.send(());
    server
        .await
        .expect("server task")
        .expect("server stops cleanly");
    eprintln!("{}", report.table());
    report
}

fn assert_clean(report: &Report) {
    let d = &report.delivery;
    assert_eq!(d.gaps, 0, "gaps\n{}", report.table());
    assert_eq!(d.duplicates, 0, "duplicates\n{}", report.table());
    assert_eq!(d.missing, 0, "missing deliveries\n{}", report.table());
    assert_eq!(d.lost, 0, "lost placements\n{}", report.table());
    assert_eq!(d.wrong_colours, 0, "wrong colours\n{}", report.table());
    assert_eq!(d.unmatched, 0, "unmatched events\n{}", report.table());
    assert!(d.clean(), "{}", report.table());
    assert_eq!(report.players.dropped, 0, "{}", report.table());
    assert_eq!(
        report.players.connected,
        report.players.requested as u64,
        "{}",
        report.table()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_players_receive_every_placement_in_order() {
    let report = run_against_server(
        1,
        256,
        &[
            "--clients",
            "300",
            "--ramp-per-sec",
            "300",
            "--duration",
            "3s",
            "--viewport",
            "640x360",
            "--zoom",
            "2",
            "--hotspots",
            "3",
            "--hotspot-radius",
            "120",
            "--pan-every",
            "2s",
            "--place-rate",
            "60",
            "--grace",
            "1s",
            "--check-players",
            "100",
        ],
    )
    .await;
    assert_clean(&report);
    // 100 asked for, and the placers among the rest; the others only counted after painting.
    assert!(
        (100..300).contains(&report.players.checked),
        "{}",
        report.table()
    );
    assert!(
        report.placements.acked > 50,
        "placements were acknowledged\n{}",
        report.table()
    );
    assert!(report.delivery.events > report.placements.acked);
    assert!(report.latency_ms.broadcast.count > 0);
    assert!(report.latency_ms.ack.count > 0);
    assert_eq!(report.players.painted, 300);
    assert_eq!(report.latency_ms.painted.count, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_players_watching_the_whole_canvas_see_everything() {
    let report = run_against_server(
        1,
        64,
        &[
            "--clients",
            "40",
            "--ramp-per-sec",
            "200",
            "--duration",
            "2s",
            "--global",
            "--format",
            "json",
            "--grace",
            "1s",
        ],
    )
    .await;
    assert_clean(&report);
    assert!(report.placements.acked > 0, "{}", report.table());
    // Each placement reaches every player (the placer included) that had subscribed by then.
    assert!(
        report.delivery.events >= report.placements.acked * 20,
        "{}",
        report.table()
    );
    assert_eq!(report.settings.tiles_per_player, 64);
}
