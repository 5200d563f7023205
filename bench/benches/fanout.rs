//! Fan-out of one batch to many subscribers, as the edge's tile hub does it: the message is
//! wrapped once in a `SharedFrame`, an `Arc` of it is queued to every client's bounded outbox,
//! and each client's connection takes it out and asks for its encoding (made once, then cloned).

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
                        .map(|_| outbox::channel(1024))
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
                    let mut cx =
                        std::task::Context::from_waker(futures_util::task::noop_waker_ref());
                    let mut taken = std::collections::VecDeque::new();
                    for (_, inbox) in clients.iter() {
                        let _ = inbox.poll_take(&mut cx, &mut taken, 64);
                        for frame in taken.drain(..) {
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
