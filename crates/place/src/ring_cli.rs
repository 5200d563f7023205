//! `place ring init|show|add|remove`: the operator's view of the shard ring, and changing it while
//! the cluster serves (see `place_cluster::reshard` for how a change proceeds).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use place_cluster::reshard::{change_ring, ring_view, Progress, ReshardError};
use place_cluster::tls::{NodeIdentity, Role};
use place_cluster::{Ring, RingStore, ShardInfo};
use place_tiles::CanvasGeometry;
use tokio::time::Instant;

/// What to do to the ring.
#[derive(Debug)]
pub enum RingCommand {
    /// Store the first ring.
    Init {
        /// The shards.
        shards: Vec<ShardInfo>,
        /// Replace an existing ring.
        force: bool,
    },
    /// Print the ring and how each shard is doing.
    Show,
    /// Add a running shard.
    Add {
        /// The shard.
        shard: ShardInfo,
        /// The cluster's certificates, to check the shard's.
        certs: PathBuf,
        /// Whose certificate to present: an edge's, since only edges may connect to shards
        /// (default: the first `edge-*` in `certs`).
        identity: Option<String>,
    },
    /// Take a shard out, its tiles handed to the others first.
    Remove {
        /// Its id.
        id: String,
    },
}

/// Runs a ring command against the ring in Redis under `prefix`; progress goes to standard
/// output. `timeout` bounds the wait for a handoff.
pub async fn run(
    store: &RingStore,
    geometry: CanvasGeometry,
    command: RingCommand,
    timeout: Duration,
) -> anyhow::Result<()> {
    match command {
        RingCommand::Init { shards, force } => {
            let epoch = match store.load().await? {
                // A replaced ring continues the epochs, so that no shard's fence is ahead of it.
                Some(existing) if force => existing.epoch() + 1,
                _ => 1,
            };
            let ring = Ring::new(epoch, shards)?;
            store.init(&ring, force).await?;
            show(store, &ring, geometry).await
        }
        RingCommand::Show => show(store, &store.require().await?, geometry).await,
        RingCommand::Add {
            shard,
            certs,
            identity,
        } => {
            let identity = match &identity {
                Some(name) => NodeIdentity::load(&certs, name),
                None => NodeIdentity::load_first_of(&certs, Role::Edge),
            }
            .with_context(|| {
                format!(
                    "loading an edge's certificate ({}) from {} to check the new shard",
                    identity.as_deref().unwrap_or("the first edge-*"),
                    certs.display()
                )
            })?;
            place_cluster::reshard::check_new_shard(store, &identity, &shard).await?;
            let id = shard.id.clone();
            let ring = change(store, geometry, "ring add", timeout, move |r| {
                r.with_shard(shard)
            })
            .await?;
            show(store, &ring, geometry).await?;
            println!("{id}");
            Ok(())
        }
        RingCommand::Remove { id } => {
            let ring = change(store, geometry, "ring remove", timeout, move |r| {
                r.without_shard(&id)
            })
            .await?;
            show(store, &ring, geometry).await
        }
    }
}

/// Makes one change, printing what moves and the handoff's progress.
async fn change(
    store: &RingStore,
    geometry: CanvasGeometry,
    what: &str,
    timeout: Duration,
    change: impl FnOnce(&Ring) -> Result<Ring, place_cluster::RingError>,
) -> anyhow::Result<Ring> {
    let started = Instant::now();
    let holder = format!("`place {what}`");
    let outcome = change_ring(store, geometry, &holder, change, timeout, |p| {
        print_progress(p, geometry)
    })
    .await;
    match outcome {
        Ok(ring) => {
            println!(
                "handoff complete in {:.1} s: epoch {}",
                started.elapsed().as_secs_f64(),
                ring.epoch()
            );
            Ok(ring)
        }
        Err(e @ ReshardError::Incomplete { .. }) => Err(e.into()),
        Err(e) => Err(anyhow::Error::new(e).context("the ring was not changed")),
    }
}

fn print_progress(progress: &Progress, geometry: CanvasGeometry) {
    match progress {
        Progress::Stored { ring, moves } => {
            let total: usize = moves.values().map(Vec::len).sum();
            println!(
                "epoch {}: {total} of {} tiles move",
                ring.epoch(),
                geometry.tile_count()
            );
            for ((from, to), tiles) in moves {
                println!(
                    "  {from} -> {to}: {} tiles: {}",
                    tiles.len(),
                    tile_list(tiles)
                );
            }
        }
        Progress::Loading {
            loaded,
            total,
            waiting,
        } => {
            if waiting.is_empty() {
                println!("handoff: {loaded}/{total} tiles loaded by their new owners");
            } else {
                println!(
                    "handoff: {loaded}/{total} tiles loaded; waiting for {}",
                    waiting.join(", ")
                );
            }
        }
        Progress::Complete { pauses } => {
            if let Some(longest) = pauses.first() {
                println!(
                    "longest tile pause: {} ms ({} -> {}, {} tiles), as the shards saw it",
                    longest.pause.as_millis(),
                    longest.from,
                    longest.to,
                    longest.tiles
                );
            }
        }
    }
    let _ = std::io::stdout().flush();
}

/// Tiles as `tx:ty`, the first 24 of them.
fn tile_list(tiles: &[place_tiles::TileId]) -> String {
    const SHOWN: usize = 24;
    let mut list: Vec<String> = tiles.iter().take(SHOWN).map(|t| t.to_string()).collect();
    if tiles.len() > SHOWN {
        list.push(format!("and {} more", tiles.len() - SHOWN));
    }
    list.join(" ")
}

/// Prints the ring: its epoch, and per shard its address, tiles, and what it reports.
async fn show(store: &RingStore, ring: &Ring, geometry: CanvasGeometry) -> anyhow::Result<()> {
    let view = ring_view(store, ring, geometry).await?;
    println!("epoch {}", view.epoch);
    println!("shard\taddress\ttiles\tstatus");
    for shard in &view.shards {
        let status = match &shard.report {
            None => "no report (down?)".to_owned(),
            Some(r) if r.acquiring > 0 => format!(
                "epoch {}, loading {} tiles, {} placements/s",
                r.epoch, r.acquiring, r.placements_per_sec
            ),
            Some(r) => format!("epoch {}, {} placements/s", r.epoch, r.placements_per_sec),
        };
        println!(
            "{}\t{}\t{}\t{status}",
            shard.info.id, shard.info.addr, shard.tiles
        );
    }
    if !view.outside.is_empty() {
        println!("running but not in the ring: {}", view.outside.join(", "));
    }
    if !ring.failed_over().is_empty() {
        let ids: Vec<&str> = ring.failed_over().iter().map(|s| s.id.as_str()).collect();
        println!(
            "taken out by a failover (each puts itself back when it runs): {}",
            ids.join(", ")
        );
    }
    Ok(())
}
