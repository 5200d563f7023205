//! Consistent-hash routing: which shard owns a tile (`place_cluster::Ring::owner`), as every edge
//! computes it for every placement and every subscription; and building a ring, as every node
//! does when the ring's epoch changes.

// `criterion_group!` makes public functions that cannot carry docs.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use place_cluster::{Ring, ShardInfo};
use place_tiles::{CanvasGeometry, TileId};

fn shards(n: usize) -> Vec<ShardInfo> {
    (0..n)
        .map(|i| ShardInfo {
            id: format!("shard-{i}"),
            addr: format!("10.0.0.{}:4433", i + 1),
        })
        .collect()
}

fn routing(c: &mut Criterion) {
    let geometry = CanvasGeometry::new(2000, 2000).expect("size");
    let tiles: Vec<TileId> = geometry.tiles().collect();
    let mut group = c.benchmark_group("routing");
    for n in [3usize, 8, 32] {
        let ring = Ring::new(1, shards(n)).expect("a valid ring");
        group.throughput(Throughput::Elements(tiles.len() as u64));
        group.bench_function(format!("owner/{n}_shards"), |b| {
            b.iter(|| tiles.iter().map(|t| ring.owner(*t).id.len()).sum::<usize>())
        });
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("new_ring/{n}_shards"), |b| {
            b.iter(|| black_box(Ring::new(2, shards(n))))
        });
    }
    group.finish();
}

criterion_group!(benches, routing);
criterion_main!(benches);
