//! Both protocol codecs, both directions: the frames every client receives (pixel batches, tile
//! snapshots) and the one every placement sends.

// `criterion_group!` makes public functions that cannot carry docs.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use place_bench::fixtures;
use place_protocol::{binary, json, ClientMessage, RequestId, ServerMessage};
use place_tiles::TileId;

fn messages() -> Vec<(&'static str, ServerMessage)> {
    let tile = TileId::new(12, 7);
    let kinds = fixtures::tile_kinds();
    let art = kinds
        .into_iter()
        .find(|(name, _)| *name == "art")
        .map(|(_, pixels)| pixels)
        .expect("fixtures include art");
    vec![
        (
            "pixels/1",
            ServerMessage::Pixels {
                tile,
                first_seq: 1000,
                changes: fixtures::changes(1, 3),
            },
        ),
        (
            "pixels/32",
            ServerMessage::Pixels {
                tile,
                first_seq: 1000,
                changes: fixtures::changes(32, 3),
            },
        ),
        (
            "tile/art",
            ServerMessage::Tile {
                tile,
                seq: 5000,
                pixels: Box::new(art),
            },
        ),
    ]
}

fn place() -> ClientMessage {
    ClientMessage::Place {
        x: 200,
        y: 310,
        color: 5,
        request_id: Some(RequestId::Number(17)),
    }
}

fn binary_codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("binary");
    group.throughput(Throughput::Elements(1));
    for (name, message) in messages() {
        let frame = binary::encode_server(&message);
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| black_box(binary::encode_server(black_box(&message))))
        });
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| black_box(binary::decode_server(black_box(&frame))))
        });
    }
    let place = place();
    let frame = binary::encode_client(&place);
    group.bench_function("encode/place", |b| {
        b.iter(|| black_box(binary::encode_client(black_box(&place))))
    });
    group.bench_function("decode/place", |b| {
        b.iter(|| black_box(binary::decode_client(black_box(&frame))))
    });
    group.finish();
}

fn json_codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("json");
    group.throughput(Throughput::Elements(1));
    for (name, message) in messages() {
        let frame = json::encode_server(&message);
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| black_box(json::encode_server(black_box(&message))))
        });
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| black_box(json::decode_server(black_box(&frame))))
        });
    }
    let place = place();
    let frame = json::encode_client(&place);
    group.bench_function("encode/place", |b| {
        b.iter(|| black_box(json::encode_client(black_box(&place))))
    });
    group.bench_function("decode/place", |b| {
        b.iter(|| black_box(json::decode_client(black_box(&frame))))
    });
    group.finish();
}

criterion_group!(benches, binary_codec, json_codec);
criterion_main!(benches);
