//! The shard's group commit, as the sans-IO state machine does it (no I/O): a burst of
//! placements becomes one write job; when the write is done the placements are applied, answered
//! and gathered into per-tile batches that the next tick sends to the subscribers.

// `criterion_group!` makes public functions that cannot carry docs.
#![allow(missing_docs)]

use std::collections::VecDeque;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use place_bench::fixtures;
use place_shard::core::{CheckpointPolicy, Input, Output, PlaceRequest, ShardCore};
use place_tiles::{CanvasGeometry, Tile};

fn shard_with_subscribers(geometry: CanvasGeometry, subscribers: u64) -> ShardCore {
    let tiles = (0..geometry.tile_count()).map(|_| Tile::new()).collect();
    let mut core = ShardCore::new(geometry, 16, tiles, 0, CheckpointPolicy::default());
    for subscriber in 1..=subscribers {
        for tile in geometry.tiles() {
            core.handle(Input::Subscribe {
                subscriber,
                tile,
                known_seq: None,
            });
        }
    }
    core
}

/// Feeds the placements and a tick, completes every write job the shard asks for, and returns
/// the number of outputs (replies, batches to subscribers, jobs).
fn commit(core: &mut ShardCore, placements: &[PlaceRequest], last_event: &mut i64) -> usize {
    let mut inputs: VecDeque<Input> = placements
        .iter()
        .enumerate()
        .map(|(token, request)| Input::Place {
            token: token as u64,
            request: *request,
        })
        .collect();
    inputs.push_back(Input::Tick { now_ms: 0 });
    let mut outputs = 0;
    while let Some(input) = inputs.pop_front() {
        for output in core.handle(input) {
            outputs += 1;
            match output {
                Output::WriteEvents { events, .. } => {
                    *last_event += events.len() as i64;
                    inputs.push_back(Input::EventsWritten(Ok(*last_event)));
                }
                Output::WriteCheckpoint { .. } => {
                    inputs.push_back(Input::CheckpointWritten(Ok(())))
                }
                Output::Reply { .. }
                | Output::Send { .. }
                | Output::ReloadTiles(_)
                | Output::AcquireTiles { .. } => {}
            }
        }
    }
    outputs + core.handle(Input::Tick { now_ms: 0 }).len()
}

fn group_commit(c: &mut Criterion) {
    let geometry = CanvasGeometry::new(2000, 2000).expect("size");
    let mut group = c.benchmark_group("shard");
    for (count, subscribers) in [(1_000usize, 1u64), (8_192, 1), (8_192, 4)] {
        let placements = fixtures::placements(geometry, count, 11);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(
            format!("group_commit/{count}_placements/{subscribers}_subscribers"),
            |b| {
                let mut last_event = 0;
                b.iter_batched_ref(
                    || shard_with_subscribers(geometry, subscribers),
                    |core| black_box(commit(core, &placements, &mut last_event)),
                    BatchSize::LargeInput,
                )
            },
        );
    }
    group.finish();
}

criterion_group!(benches, group_commit);
criterion_main!(benches);
