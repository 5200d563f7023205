//! Tests of the shard state machine: no I/O, the test plays the driver.

use super::*;
use proptest::prelude::*;

fn core(width: u32, height: u32) -> ShardCore {
    let geometry = CanvasGeometry::new(width, height).expect("valid");
    let tiles = (0..geometry.tile_count()).map(|_| Tile::new()).collect();
    ShardCore::new(geometry, 16, tiles, 0, CheckpointPolicy::default())
}

fn place(token: Token, x: u32, y: u32, color: u8) -> Input {
    Input::Place {
        token,
        request: PlaceRequest {
            x,
            y,
            color,
            user_id: 1,
            placed_at: 1000,
            action_id: None,
            placement_id: 0,
        },
    }
}

fn replies(out: &[Output]) -> Vec<(Token, Result<Placed, PlaceError>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Reply { token, result } => Some((*token, *result)),
            _ => None,
        })
        .collect()
}

fn writes(out: &[Output]) -> Vec<&Vec<NewEvent>> {
    out.iter()
        .filter_map(|o| match o {
            Output::WriteEvents { events, .. } => Some(events),
            _ => None,
        })
        .collect()
}

#[test]
fn a_placement_is_applied_and_answered_only_once_durable() {
    let mut shard = core(128, 128);
    let out = shard.handle(place(1, 70, 3, 5));
    assert!(replies(&out).is_empty(), "no answer before the write");
    let events = writes(&out);
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0][0],
        NewEvent {
            x: 70,
            y: 3,
            color: 5,
            user_id: 1,
            placed_at: 1000,
            tile_seq: 1,
            action_id: None,
        }
    );
    assert_eq!(
        shard.tile(TileId::new(1, 0)).expect("tile").seq(),
        0,
        "not applied yet"
    );

    let out = shard.handle(Input::EventsWritten(Ok(1)));
    assert_eq!(replies(&out), vec![(1, Ok(Placed { seq: 1 }))]);
    let tile = shard.tile(TileId::new(1, 0)).expect("tile");
    assert_eq!((tile.seq(), tile.get(6, 3)), (1, 5));
    assert!(shard.is_idle());
}

#[test]
fn a_grown_canvas_keeps_every_tile_and_takes_placements_in_the_new_area() {
    let mut shard = core(128, 128);
    shard.handle(place(1, 70, 3, 5));
    shard.handle(Input::EventsWritten(Ok(1)));
    shard.handle(place(2, 3, 70, 6));
    shard.handle(Input::EventsWritten(Ok(2)));
    let out = shard.handle(place(3, 200, 3, 7));
    assert_eq!(replies(&out), vec![(3, Err(PlaceError::InvalidCoords))]);

    // Wider: every tile's place in the table moves, its state does not.
    shard.grow(CanvasGeometry::new(300, 150).expect("valid"));
    let a = shard.tile(TileId::new(1, 0)).expect("kept");
    assert_eq!((a.seq(), a.get(6, 3)), (1, 5));
    let b = shard.tile(TileId::new(0, 1)).expect("kept");
    assert_eq!((b.seq(), b.get(3, 6)), (1, 6));
    let new = shard.tile(TileId::new(4, 2)).expect("new tile");
    assert_eq!(new.seq(), 0);
    assert!(new.pixels().iter().all(|&p| p == 0), "new tiles are empty");

    let out = shard.handle(place(4, 290, 140, 7));
    assert_eq!(writes(&out)[0][0].tile_seq, 1);
    let out = shard.handle(Input::EventsWritten(Ok(3)));
    assert_eq!(replies(&out), vec![(4, Ok(Placed { seq: 1 }))]);
    assert_eq!(shard.tile(TileId::new(4, 2)).expect("tile").get(34, 12), 7);

    // A smaller size is not a growth: ignored.
    shard.grow(CanvasGeometry::new(64, 64).expect("valid"));
    assert_eq!(
        shard.geometry(),
        CanvasGeometry::new(300, 150).expect("valid")
    );
}

#[test]
fn placements_arriving_during_a_write_are_committed_together() {
    let mut shard = core(64, 64);
    shard.handle(place(1, 0, 0, 1));
    for token in 2..=5 {
        assert!(
            writes(&shard.handle(place(token, token as u32, 0, 2))).is_empty(),
            "one write at a time"
        );
    }
    let out = shard.handle(Input::EventsWritten(Ok(1)));
    let next = writes(&out);
    assert_eq!(next.len(), 1);
    assert_eq!(
        next[0].iter().map(|e| e.tile_seq).collect::<Vec<_>>(),
        vec![2, 3, 4, 5]
    );
    let out = shard.handle(Input::EventsWritten(Ok(5)));
    assert_eq!(replies(&out).len(), 4);
    assert_eq!(shard.tile(TileId::new(0, 0)).expect("tile").seq(), 5);
}

#[test]
fn a_failed_write_places_nothing_and_consumes_no_seq() {
    let mut shard = core(64, 64);
    shard.handle(place(1, 0, 0, 1));
    let out = shard.handle(Input::EventsWritten(Err("disk full".into())));
    assert_eq!(replies(&out), vec![(1, Err(PlaceError::Unavailable))]);
    assert_eq!(shard.tile(TileId::new(0, 0)).expect("tile").seq(), 0);
    let out = shard.handle(place(2, 0, 0, 3));
    assert_eq!(writes(&out)[0][0].tile_seq, 1, "the failed seq is reused");
}

#[test]
fn invalid_placements_are_refused_at_once() {
    let mut shard = core(100, 100);
    assert_eq!(
        replies(&shard.handle(place(1, 100, 0, 1))),
        vec![(1, Err(PlaceError::InvalidCoords))]
    );
    assert_eq!(
        replies(&shard.handle(place(2, 0, 0, 16))),
        vec![(2, Err(PlaceError::InvalidColor))]
    );
    assert!(shard.is_idle());
}

#[test]
fn subscribers_get_a_snapshot_then_each_batch_once() {
    let mut shard = core(128, 64);
    let tile = TileId::new(0, 0);
    let out = shard.handle(Input::Subscribe {
        subscriber: 7,
        tile,
        known_seq: None,
    });
    assert!(
        matches!(&out[..], [Output::Send { subscriber: 7, message: ShardMessage::Snapshot(s) }] if s.seq == 0)
    );

    shard.handle(place(1, 1, 1, 4));
    shard.handle(Input::EventsWritten(Ok(1)));
    shard.handle(place(2, 80, 1, 4)); // another tile, nobody watches it
    shard.handle(Input::EventsWritten(Ok(2)));
    let out = shard.handle(Input::Tick { now_ms: 10 });
    let sent: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                subscriber,
                message: ShardMessage::Batch(b),
            } => Some((*subscriber, b.tile, b.first_seq, b.changes.len())),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec![(7, tile, 1, 1)]);
    assert!(
        shard.handle(Input::Tick { now_ms: 20 }).is_empty(),
        "a batch is sent once"
    );

    shard.handle(Input::Unsubscribe {
        subscriber: 7,
        tile,
    });
    shard.handle(place(3, 1, 1, 5));
    shard.handle(Input::EventsWritten(Ok(3)));
    assert!(
        shard.handle(Input::Tick { now_ms: 30 }).is_empty(),
        "no longer subscribed"
    );
}

#[test]
fn a_batch_carries_when_its_first_change_was_applied() {
    let mut shard = core(64, 64);
    let tile = TileId::new(0, 0);
    shard.handle(Input::Subscribe {
        subscriber: 1,
        tile,
        known_seq: None,
    });
    shard.handle(Input::Tick { now_ms: 1_000 });
    shard.handle(place(1, 1, 1, 2));
    // The driver tells the time with the write's result: the batch is stamped then, not at the
    // last tick.
    shard.set_clock(1_004);
    shard.handle(Input::EventsWritten(Ok(1)));
    shard.set_clock(1_007);
    shard.handle(place(2, 2, 1, 2));
    shard.handle(Input::EventsWritten(Ok(2)));
    shard.set_clock(900); // the clock never goes back
    let out = shard.handle(Input::Tick { now_ms: 1_010 });
    let stamps: Vec<(u64, usize, i64)> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                message: ShardMessage::Batch(b),
                ..
            } => Some((b.first_seq, b.changes.len(), b.applied_at_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(stamps, vec![(1, 2, 1_004)], "the oldest change's time");
    assert_eq!(shard.queue_depth(), 0);
    shard.handle(place(3, 3, 1, 2));
    shard.handle(place(4, 4, 1, 2));
    assert_eq!(shard.queue_depth(), 1, "one written, one queued behind it");
    // A catch-up is not stamped: its changes were applied long ago.
    let out = shard.handle(Input::Subscribe {
        subscriber: 2,
        tile,
        known_seq: Some(1),
    });
    assert!(out.iter().any(|o| matches!(o, Output::Send { subscriber: 2, message: ShardMessage::Batch(b) } if b.applied_at_ms == 0)));
}

#[test]
fn a_subscriber_holding_a_seq_gets_exactly_what_it_missed() {
    let mut shard = core(64, 64);
    for i in 0..5 {
        shard.handle(place(i, i as u32, 0, 3));
        shard.handle(Input::EventsWritten(Ok(i as i64 + 1)));
    }
    let out = shard.handle(Input::Subscribe {
        subscriber: 1,
        tile: TileId::new(0, 0),
        known_seq: Some(3),
    });
    match &out[..] {
        [Output::Send {
            message: ShardMessage::Batch(b),
            ..
        }] => {
            assert_eq!((b.first_seq, b.changes.len()), (4, 2));
            assert_eq!(
                b.changes[0],
                PixelChange {
                    lx: 3,
                    ly: 0,
                    color: 3
                }
            );
        }
        other => panic!("expected a catch-up batch, got {other:?}"),
    }
}

#[test]
fn checkpoints_cover_dirty_tiles_and_wait_for_the_write_slot() {
    let geometry = CanvasGeometry::new(128, 64).expect("valid");
    let tiles = (0..geometry.tile_count()).map(|_| Tile::new()).collect();
    let policy = CheckpointPolicy {
        max_events: 2,
        max_interval_ms: 1_000_000,
    };
    let mut shard = ShardCore::new(geometry, 16, tiles, 0, policy);
    shard.handle(place(1, 0, 0, 1));
    shard.handle(Input::EventsWritten(Ok(1)));
    shard.handle(place(2, 64, 0, 1));
    shard.handle(Input::EventsWritten(Ok(2)));
    shard.handle(place(3, 1, 0, 1)); // in flight while the checkpoint becomes due
    let out = shard.handle(Input::Tick { now_ms: 0 });
    assert!(
        !out.iter()
            .any(|o| matches!(o, Output::WriteCheckpoint { .. })),
        "write slot busy"
    );
    let out = shard.handle(Input::EventsWritten(Ok(3)));
    let checkpoint = out.iter().find_map(|o| match o {
        Output::WriteCheckpoint {
            tiles,
            through_event_id,
        } => Some((tiles.len(), *through_event_id)),
        _ => None,
    });
    assert_eq!(checkpoint, Some((2, 3)));
    shard.handle(place(4, 2, 0, 1));
    let out = shard.handle(Input::CheckpointWritten(Err("io".into())));
    assert_eq!(
        writes(&out).len(),
        1,
        "events go on after a failed checkpoint"
    );
    shard.request_checkpoint();
    let out = shard.handle(Input::EventsWritten(Ok(4)));
    let retried = out.iter().find_map(|o| match o {
        Output::WriteCheckpoint { tiles, .. } => Some(tiles.len()),
        _ => None,
    });
    assert_eq!(
        retried,
        Some(2),
        "the failed checkpoint's tiles are written again"
    );
}

#[derive(Debug, Clone)]
enum Op {
    Place { x: u32, y: u32, color: u8 },
    Subscribe { who: u64, tile: usize, resume: bool },
    Unsubscribe { who: u64, tile: usize },
    WriteOk,
    WriteFail,
    Tick,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..128, 0u32..128, 0u8..16).prop_map(|(x, y, color)| Op::Place { x, y, color }),
        2 => (0u64..3, 0usize..4, any::<bool>()).prop_map(|(who, tile, resume)| Op::Subscribe { who, tile, resume }),
        1 => (0u64..3, 0usize..4).prop_map(|(who, tile)| Op::Unsubscribe { who, tile }),
        3 => Just(Op::WriteOk),
        1 => Just(Op::WriteFail),
        2 => Just(Op::Tick),
    ]
}

proptest! {
    /// Under any interleaving of placements, subscriptions, write outcomes and ticks, every
    /// subscriber's copy of a tile follows the shard's with no gap and no duplicate, and ends equal
    /// to it; and every placement answered Ok is on the tile.
    #[test]
    fn subscribers_mirror_the_shard_under_any_interleaving(ops in prop::collection::vec(arb_op(), 1..120)) {
        let mut shard = core(128, 128);
        let geometry = CanvasGeometry::new(128, 128).expect("valid");
        let all: Vec<TileId> = geometry.tiles().collect();
        // Mirror per (subscriber, tile), kept after unsubscribing so it can resume with its seq.
        let mut mirrors: HashMap<(u64, TileId), Tile> = HashMap::new();
        let mut subscribed: HashSet<(u64, TileId)> = HashSet::new();
        let mut next_token = 0;
        let mut last_id = 0;
        let mut in_flight = 0usize;
        let mut acked = 0usize;
        for op in ops.into_iter().chain([Op::WriteOk, Op::WriteOk, Op::Tick]) {
            let input = match op {
                Op::Place { x, y, color } => { next_token += 1; place(next_token, x, y, color) }
                Op::Subscribe { who, tile, resume } => {
                    let tile = all[tile];
                    let known_seq = if resume { mirrors.get(&(who, tile)).map(Tile::seq) } else { None };
                    subscribed.insert((who, tile));
                    Input::Subscribe { subscriber: who, tile, known_seq }
                }
                Op::Unsubscribe { who, tile } => {
                    subscribed.remove(&(who, all[tile]));
                    Input::Unsubscribe { subscriber: who, tile: all[tile] }
                }
                Op::WriteOk if in_flight > 0 => { last_id += in_flight as i64; Input::EventsWritten(Ok(last_id)) }
                Op::WriteFail if in_flight > 0 => Input::EventsWritten(Err("fail".into())),
                Op::WriteOk | Op::WriteFail | Op::Tick => Input::Tick { now_ms: 0 },
            };
            for o in shard.handle(input) {
                match o {
                    Output::WriteEvents { events, .. } => in_flight = events.len(),
                    Output::Reply { result: Ok(_), .. } => { acked += 1; in_flight = 0 }
                    Output::Reply { result: Err(_), .. } => in_flight = 0,
                    Output::Send { subscriber, message } => match message {
                        ShardMessage::Snapshot(s) => {
                            mirrors.insert((subscriber, s.tile), Tile::from_pixels(s.seq, s.pixels.clone()));
                        }
                        ShardMessage::Batch(b) => {
                            let mirror = mirrors.get_mut(&(subscriber, b.tile)).expect("a batch follows a snapshot or a held copy");
                            let applied = mirror.apply_batch(b.first_seq, &b.changes);
                            prop_assert_eq!(applied, Ok(b.changes.len()), "no gap and no duplicate");
                        }
                    },
                    Output::WriteCheckpoint { .. } | Output::ReloadTiles(_) | Output::AcquireTiles { .. } => {}
                }
            }
        }
        // Drain: finish any write and flush.
        while !shard.is_idle() {
            last_id += in_flight as i64;
            for o in shard.handle(Input::EventsWritten(Ok(last_id))) {
                match o {
                    Output::WriteEvents { events, .. } => in_flight = events.len(),
                    Output::Reply { result: Ok(_), .. } => acked += 1,
                    _ => {}
                }
            }
        }
        for o in shard.handle(Input::Tick { now_ms: 0 }) {
            if let Output::Send { subscriber, message: ShardMessage::Batch(b) } = o {
                let mirror = mirrors.get_mut(&(subscriber, b.tile)).expect("held");
                prop_assert_eq!(mirror.apply_batch(b.first_seq, &b.changes), Ok(b.changes.len()));
            }
        }
        for (who, tile) in subscribed {
            prop_assert_eq!(mirrors.get(&(who, tile)), shard.tile(tile), "subscriber {} tile {}", who, tile);
        }
        let total: u64 = all.iter().map(|t| shard.tile(*t).expect("tile").seq()).sum();
        prop_assert_eq!(total, acked as u64, "every acknowledged placement, and only those, is applied");
    }
}

#[test]
fn a_conflict_reloads_the_tiles_and_refuses_them_meanwhile() {
    let mut shard = core(128, 64);
    let tile = TileId::new(0, 0);
    shard.handle(Input::Subscribe {
        subscriber: 3,
        tile,
        known_seq: None,
    });
    shard.handle(place(1, 1, 1, 2));
    shard.handle(place(2, 2, 2, 2)); // queued behind the first write
    let conflict = WriteFailure {
        reason: "duplicate (tile, seq)".into(),
        conflict: true,
        fenced: Vec::new(),
    };
    let out = shard.handle(Input::EventsWritten(Err(conflict)));
    let refused = replies(&out);
    assert_eq!(
        refused.len(),
        2,
        "the batch and the queued placement of that tile: {refused:?}"
    );
    assert!(refused
        .iter()
        .all(|(_, r)| *r == Err(PlaceError::Unavailable)));
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::ReloadTiles(t) if t == &vec![tile])));
    assert_eq!(
        replies(&shard.handle(place(3, 3, 3, 2))),
        vec![(3, Err(PlaceError::Unavailable))],
        "refused while reloading"
    );
    assert!(
        writes(&shard.handle(place(4, 70, 0, 2))).len() == 1,
        "other tiles go on"
    );

    // The store says the tile is at seq 1 (the first write had committed after all).
    let mut stored = Tile::new();
    stored.apply(PixelChange {
        lx: 1,
        ly: 1,
        color: 2,
    });
    let out = shard.handle(Input::TilesReloaded(vec![(tile, stored.clone())]));
    assert!(out.iter().any(|o| matches!(o, Output::Send { subscriber: 3, message: ShardMessage::Snapshot(s) } if s.seq == 1)));
    assert_eq!(shard.tile(tile), Some(&stored));
    shard.handle(Input::EventsWritten(Ok(9)));
    let out = shard.handle(place(5, 5, 5, 2));
    assert_eq!(
        writes(&out)[0][0].tile_seq,
        2,
        "seqs continue from the stored state"
    );
}

#[test]
fn placements_queued_behind_a_slow_write_past_the_limit_are_refused_unwritten() {
    let mut shard = core(64, 64);
    shard.handle(Input::Tick { now_ms: 10_000 });
    assert_eq!(writes(&shard.handle(place(1, 0, 0, 1))).len(), 1);
    shard.handle(place(2, 1, 0, 2));
    shard.handle(Input::Tick { now_ms: 10_600 });
    shard.handle(place(3, 2, 0, 3));
    shard.handle(Input::Tick {
        now_ms: 10_000 + MAX_QUEUE_WAIT_MS + 1,
    });

    let out = shard.handle(Input::EventsWritten(Err(WriteFailure::from("store away"))));
    assert_eq!(
        replies(&out),
        vec![
            (1, Err(PlaceError::Unavailable)),
            (2, Err(PlaceError::Unavailable))
        ],
        "the failed batch, then the one that waited too long"
    );
    let written = writes(&out);
    assert_eq!(written.len(), 1, "the fresh placement is still written");
    assert_eq!((written[0].len(), written[0][0].x), (1, 2));
}

/// A shard owning `tiles` of a 192x64 canvas (tiles (0,0), (1,0), (2,0)) at epoch 1.
fn owning(tiles: &[TileId]) -> ShardCore {
    let mut shard = core(192, 64);
    shard.set_owned(1, Some(tiles.iter().copied().collect()));
    shard
}

#[test]
fn a_ring_change_refuses_lost_tiles_and_acquires_gained_ones_before_serving_them() {
    let (a, b, c) = (TileId::new(0, 0), TileId::new(1, 0), TileId::new(2, 0));
    let mut shard = owning(&[a, b]);
    shard.handle(place(1, 1, 1, 2)); // tile a, in flight
    shard.handle(place(2, 65, 1, 3)); // tile b, queued
    shard.handle(place(3, 2, 2, 4)); // tile a, queued
    shard.handle(Input::Subscribe {
        subscriber: 7,
        tile: b,
        known_seq: None,
    });

    // Epoch 2: b moves away, c comes to us.
    let out = shard.handle(Input::Ownership {
        epoch: 2,
        owned: Some([a, c].into()),
    });
    assert_eq!(replies(&out), vec![(2, Err(PlaceError::NotOwner))]);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::AcquireTiles { epoch: 2, tiles } if tiles == &vec![c])));
    assert_eq!(shard.epoch(), 2);
    assert_eq!(shard.acquiring(), 1);
    let out = shard.handle(place(4, 130, 0, 5));
    assert!(
        replies(&out).is_empty() && writes(&out).is_empty(),
        "held while acquiring"
    );
    assert_eq!(
        replies(&shard.handle(place(5, 66, 0, 5))),
        vec![(5, Err(PlaceError::NotOwner))]
    );
    assert!(shard.snapshot(c).is_none() && shard.snapshot(b).is_none());
    // A subscription to the acquiring tile waits for it.
    let out = shard.handle(Input::Subscribe {
        subscriber: 8,
        tile: c,
        known_seq: Some(3),
    });
    assert!(out.iter().all(|o| !matches!(o, Output::Send { .. })));

    // The write in flight (tile a) lands; the queued one of a goes next, at epoch 2.
    let out = shard.handle(Input::EventsWritten(Ok(1)));
    assert_eq!(replies(&out), vec![(1, Ok(Placed { seq: 1 }))]);
    assert!(matches!(
        out.iter().find(|o| matches!(o, Output::WriteEvents { .. })),
        Some(Output::WriteEvents { epoch: 2, .. })
    ));
    shard.handle(Input::EventsWritten(Ok(2)));

    // Tile c arrives from the store at seq 5: the waiting subscriber gets what it missed.
    let mut stored = Tile::new();
    for i in 0..5 {
        stored.apply(PixelChange {
            lx: i,
            ly: 0,
            color: 1,
        });
    }
    let stale = shard.handle(Input::TilesAcquired {
        epoch: 1,
        tiles: vec![(c, Tile::new())],
    });
    assert!(
        stale.is_empty(),
        "a load for another acquisition is ignored"
    );
    let out = shard.handle(Input::TilesAcquired {
        epoch: 2,
        tiles: vec![(c, stored.clone())],
    });
    assert!(out.iter().any(|o| matches!(o, Output::Send { subscriber: 8, message: ShardMessage::Batch(batch) } if batch.first_seq == 4 && batch.changes.len() == 2)));
    assert_eq!(shard.acquiring(), 0);
    let held = writes(&out);
    assert_eq!(held.len(), 1, "the held placement is written now");
    assert_eq!(
        (held[0][0].x, held[0][0].tile_seq),
        (130, 6),
        "seqs go on from the stored tile"
    );
    assert_eq!(
        replies(&shard.handle(Input::EventsWritten(Ok(3)))),
        vec![(4, Ok(Placed { seq: 6 }))]
    );
}

#[test]
fn a_fenced_write_refuses_the_moved_tiles_and_writes_the_others_again() {
    let (a, b) = (TileId::new(0, 0), TileId::new(1, 0));
    let mut shard = owning(&[a, b]);
    shard.handle(Input::Tick { now_ms: 1 });
    shard.handle(place(1, 1, 1, 2));
    shard.handle(place(2, 2, 2, 2)); // a, queued
    shard.handle(place(3, 70, 0, 3)); // b, queued
    let out = shard.handle(Input::EventsWritten(Ok(1)));
    assert_eq!(writes(&out)[0].len(), 2, "one batch of both tiles");
    let fenced = WriteFailure {
        reason: "moved".into(),
        conflict: false,
        fenced: vec![a],
    };
    let out = shard.handle(Input::EventsWritten(Err(fenced)));
    assert_eq!(replies(&out), vec![(2, Err(PlaceError::NotOwner))]);
    let rewritten = writes(&out);
    assert_eq!(rewritten.len(), 1);
    assert_eq!(
        (
            rewritten[0].len(),
            rewritten[0][0].x,
            rewritten[0][0].tile_seq
        ),
        (1, 70, 1),
        "tile b's placement is written again with the same seq"
    );
    assert_eq!(
        replies(&shard.handle(place(4, 3, 3, 1))),
        vec![(4, Err(PlaceError::NotOwner))],
        "the fenced tile is no longer ours"
    );
    assert_eq!(
        replies(&shard.handle(Input::EventsWritten(Ok(2)))),
        vec![(3, Ok(Placed { seq: 1 }))]
    );
}

#[derive(Debug, Clone)]
enum RingOp {
    /// A placement sent to this shard (refused unless it owns the tile).
    Place {
        x: u32,
        y: u32,
        color: u8,
    },
    /// Another shard places on a tile this one does not own (skipped when it does).
    PlaceElsewhere {
        tile: usize,
        lx: u8,
        color: u8,
    },
    Subscribe {
        who: u64,
        tile: usize,
        resume: bool,
    },
    Unsubscribe {
        who: u64,
        tile: usize,
    },
    /// The ring gives this shard the tiles of `mask` at the next epoch (only between writes).
    Ownership {
        mask: u8,
    },
    /// The outstanding acquisition's load arrives from the store.
    Acquired,
    WriteOk,
    WriteFail,
    Tick,
}

fn arb_ring_op() -> impl Strategy<Value = RingOp> {
    prop_oneof![
        3 => (0u32..192, 0u32..64, 0u8..16).prop_map(|(x, y, color)| RingOp::Place { x, y, color }),
        2 => (0usize..3, 0u8..64, 0u8..16).prop_map(|(tile, lx, color)| RingOp::PlaceElsewhere { tile, lx, color }),
        3 => (0u64..3, 0usize..3, any::<bool>()).prop_map(|(who, tile, resume)| RingOp::Subscribe { who, tile, resume }),
        1 => (0u64..3, 0usize..3).prop_map(|(who, tile)| RingOp::Unsubscribe { who, tile }),
        1 => (0u8..8).prop_map(|mask| RingOp::Ownership { mask }),
        2 => Just(RingOp::Acquired),
        3 => Just(RingOp::WriteOk),
        1 => Just(RingOp::WriteFail),
        1 => Just(RingOp::Tick),
    ]
}

proptest! {
    /// In a cluster, under any interleaving of ring changes, loads, placements here and on
    /// other shards, subscriptions and write outcomes: whatever a subscriber is sent about a tile
    /// is the tile as stored (never an empty or stale copy of a tile this shard does not own, or
    /// does not own yet), and every subscription to a tile the shard owns is answered once
    /// the tile is loaded, its copy then following the shard's with no gap.
    #[test]
    fn subscribers_see_only_the_stored_tile_across_ring_changes(ops in prop::collection::vec(arb_ring_op(), 1..150)) {
        let all: Vec<TileId> = vec![TileId::new(0, 0), TileId::new(1, 0), TileId::new(2, 0)];
        let mut shard = owning(&[all[0]]);
        // The store: every tile as durably written, by this shard or another.
        let mut stored: HashMap<TileId, Tile> = all.iter().map(|t| (*t, Tile::new())).collect();
        let mut mirrors: HashMap<(u64, TileId), Tile> = HashMap::new();
        // Subscriptions the shard has answered, and those still waiting for an answer.
        let mut answered: HashSet<(u64, TileId)> = HashSet::new();
        let mut waiting: HashSet<(u64, TileId)> = HashSet::new();
        let mut in_flight: Vec<NewEvent> = Vec::new();
        let mut acquisitions: VecDeque<(u64, Vec<TileId>)> = VecDeque::new();
        let (mut epoch, mut next_token, mut last_id) = (1u64, 0u64, 0i64);
        // Then every write and load completes (each op is a no-op tick once there is none).
        let finish = [RingOp::WriteOk, RingOp::Acquired].into_iter().cycle().take(40).chain([RingOp::Tick]);
        for op in ops.into_iter().chain(finish) {
            let mut now_owned = None;
            let input = match op {
                RingOp::Place { x, y, color } => { next_token += 1; place(next_token, x, y, color) }
                RingOp::PlaceElsewhere { tile, lx, color } => {
                    let tile = all[tile];
                    if !shard.owns(tile) {
                        stored.get_mut(&tile).expect("tile").apply(PixelChange { lx, ly: 0, color });
                    }
                    Input::Tick { now_ms: 0 }
                }
                RingOp::Subscribe { who, tile, resume } => {
                    let tile = all[tile];
                    let known_seq = if resume { mirrors.get(&(who, tile)).map(Tile::seq) } else { None };
                    answered.remove(&(who, tile));
                    waiting.insert((who, tile));
                    Input::Subscribe { subscriber: who, tile, known_seq }
                }
                RingOp::Unsubscribe { who, tile } => {
                    answered.remove(&(who, all[tile]));
                    waiting.remove(&(who, all[tile]));
                    Input::Unsubscribe { subscriber: who, tile: all[tile] }
                }
                RingOp::Ownership { mask } if in_flight.is_empty() => {
                    epoch += 1;
                    let owned: HashSet<TileId> = (0..3).filter(|i| mask & (1 << i) != 0).map(|i| all[i]).collect();
                    now_owned = Some(owned.clone());
                    Input::Ownership { epoch, owned: Some(owned) }
                }
                RingOp::Acquired => match acquisitions.pop_front() {
                    Some((at, tiles)) => Input::TilesAcquired {
                        epoch: at,
                        tiles: tiles.iter().map(|t| (*t, stored[t].clone())).collect(),
                    },
                    None => Input::Tick { now_ms: 0 },
                },
                RingOp::WriteOk if !in_flight.is_empty() => {
                    for e in in_flight.drain(..) {
                        let tile = TileId::new((e.x / 64) as u16, (e.y / 64) as u16);
                        let t = stored.get_mut(&tile).expect("tile");
                        prop_assert_eq!(t.seq() + 1, e.tile_seq, "written in seq order");
                        t.apply(PixelChange { lx: (e.x % 64) as u8, ly: (e.y % 64) as u8, color: e.color });
                        last_id += 1;
                    }
                    Input::EventsWritten(Ok(last_id))
                }
                RingOp::WriteFail if !in_flight.is_empty() => {
                    in_flight.clear();
                    Input::EventsWritten(Err("fail".into()))
                }
                RingOp::Ownership { .. } | RingOp::WriteOk | RingOp::WriteFail | RingOp::Tick => Input::Tick { now_ms: 0 },
            };
            for o in shard.handle(input) {
                match o {
                    Output::WriteEvents { events, .. } => in_flight = events,
                    Output::AcquireTiles { epoch, tiles } => acquisitions.push_back((epoch, tiles)),
                    Output::Send { subscriber, message } => match message {
                        ShardMessage::Snapshot(s) => {
                            let store = &stored[&s.tile];
                            prop_assert_eq!(s.seq, store.seq(), "a snapshot is the stored tile: its seq");
                            prop_assert!(*s.pixels == *store.pixels(), "a snapshot is the stored tile: its pixels");
                            waiting.remove(&(subscriber, s.tile));
                            answered.insert((subscriber, s.tile));
                            mirrors.insert((subscriber, s.tile), Tile::from_pixels(s.seq, s.pixels.clone()));
                        }
                        ShardMessage::Batch(b) => {
                            let mirror = mirrors.get_mut(&(subscriber, b.tile)).expect("a batch follows a snapshot or a held copy");
                            prop_assert_eq!(mirror.apply_batch(b.first_seq, &b.changes), Ok(b.changes.len()), "no gap and no duplicate");
                            prop_assert!(mirror.seq() <= stored[&b.tile].seq(), "nothing beyond the store");
                            waiting.remove(&(subscriber, b.tile));
                            answered.insert((subscriber, b.tile));
                        }
                    },
                    Output::Reply { .. } | Output::WriteCheckpoint { .. } | Output::ReloadTiles(_) => {}
                }
            }
            if let Some(owned) = now_owned {
                // The edges' streams of a lost tile end with the ring change (after its last window).
                answered.retain(|(_, t)| owned.contains(t));
            }
        }
        prop_assert!(in_flight.is_empty() && acquisitions.is_empty(), "drained");
        for (who, tile) in waiting {
            prop_assert!(!shard.owns(tile), "subscriber {} of owned, loaded tile {} never answered", who, tile);
        }
        for (who, tile) in answered {
            prop_assert_eq!(mirrors.get(&(who, tile)), Some(&stored[&tile]), "subscriber {} tile {}", who, tile);
            prop_assert_eq!(shard.tile(tile), Some(&stored[&tile]));
        }
    }
}
