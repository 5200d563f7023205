//! Fan-out of one batch to many subscribers, as the edge's tile hub does it: the message is
//! wrapped once in a `SharedFrame`, an `Arc` of it is queued to every client's bounded channel,
//! and each client's writer takes it out and asks for its encoding (made once, then cloned).

// `criterion_group!` makes public functions that cannot carry docs.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use place_bench::fixtures;
use place_edge::frame::{Format, SharedFrame};
use place_edge::hub::Outbound;
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
                        .map(|_| {
                            let (out, rx, _lag) = Outbound::channel(1024);
                            (out, rx)
                        })
                        .collect::<Vec<_>>()
                },
                |clients| {
                    let frame = SharedFrame::new(ServerMessage::Pixels {
                        tile: TileId::new(3, 4),
                        first_seq: 18,
                        changes: changes.clone(),
                    });
                    for (out, _) in clients.iter() {
                        out.send(std::sync::Arc::clone(&frame));
                    }
                    for (_, rx) in clients.iter_mut() {
                        if let Ok(frame) = rx.try_recv() {
                            black_box(frame.to_ws(Format::Binary));
                        }
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
