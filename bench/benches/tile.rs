//! The tile model's hot paths: applying placements (what the shard does for every acknowledged
//! placement and every edge mirror for every batch), catch-ups, and snapshot compression (every
//! checkpoint, every snapshot sent to a client).

// `criterion_group!` makes public functions that cannot carry docs.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use place_bench::fixtures;
use place_tiles::{compress_tile, decompress_tile, Tile};

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("tile");
    let changes = fixtures::changes(4096, 1);
    group.throughput(Throughput::Elements(1));
    group.bench_function("apply", |b| {
        let mut tile = Tile::new();
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % changes.len();
            black_box(tile.apply(changes[i]))
        })
    });
    group.throughput(Throughput::Elements(64));
    group.bench_function("apply_batch/64", |b| {
        b.iter_batched_ref(
            Tile::new,
            |tile| tile.apply_batch(1, black_box(&changes[..64])),
            BatchSize::SmallInput,
        )
    });
    let mut busy = Tile::new();
    for change in &changes {
        busy.apply(*change);
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("since/100_missed", |b| {
        b.iter(|| black_box(busy.since(busy.seq() - 100)))
    });
    group.finish();
}

fn snapshots(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot");
    group.throughput(Throughput::Bytes(4096));
    for (name, pixels) in fixtures::tile_kinds() {
        let compressed = compress_tile(&pixels);
        group.bench_function(format!("compress/{name}"), |b| {
            b.iter(|| black_box(compress_tile(black_box(&pixels))))
        });
        group.bench_function(format!("decompress/{name}"), |b| {
            b.iter(|| black_box(decompress_tile(black_box(&compressed))))
        });
    }
    group.finish();
}

criterion_group!(benches, apply, snapshots);
criterion_main!(benches);
