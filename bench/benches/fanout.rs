//! Fan-out of one batch to many subscribers, as the edge's tile hub does it, short of the sockets:
//! the message is wrapped once in a `SharedFrame`, an `Arc` of it is queued to every client's
//! bounded outbox and its wire bytes are asked for (encoded once, then shared). The `send` per
//! socket that follows in the edge is measured end to end by `bench/compare`.

// `criterion_group!` makes public functions that cannot carry docs.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use place_bench::fixtures;
use place_edge::frame::{Format, SharedFrame};
use place_edge::outbox;
use place_protocol::ServerMessage;
use place_tiles::TileId;

fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    let changes = fixtures::changes(4, 9);
    for subscribers in [100usize, 1_000, 10_000] {
        group.throughput(Throughput::Elements(subscribers as u64));
        group.bench_function(format!("batch_to/{subscribers}"), |b| {
            b.iter_batched_ref(
                || {
                    (0..subscribers)
                        .map(|_| outbox::channel(1024, Format::Binary, None))
                        .collect::<Vec<_>>()
                },
                |clients| {
                    let frame = SharedFrame::new(ServerMessage::Pixels {
                        tile: TileId::new(3, 4),
                        first_seq: 18,
                        changes: changes.clone(),
                    });
                    for (out, _) in clients.iter() {
                        black_box(out.enqueue(std::sync::Arc::clone(&frame)));
                        black_box(frame.wire(Format::Binary));
                    }
                    for (_, inbox) in clients.iter() {
                        inbox.discard_queued();
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
