//! A shard's QUIC side: accepts edges (mutually authenticated), and serves each stream they open
//! against the local [`ShardHandle`]: placements (on a lane, alone or in batches), tile
//! subscriptions and reads.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::future::join_all;
use place_shard::{PlaceError, PlaceRequest, Placed, ShardHandle, ShardMessage};
use place_tiles::{CanvasGeometry, TileId};
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn, Instrument};

use crate::lane::Outgoing;
use crate::ring::Ring;
use crate::wire::{
    read_frame, write_frame, BatchReply, LanePlace, LaneReply, PlaceRefusal, PlaceReply, Request,
    TileFrame, WireError, WirePlace,
};

/// Messages one tile stream may have queued before the edge counts as too slow for it: the
/// stream is reset and the edge resubscribes from its seq.
pub const TILE_STREAM_QUEUE: usize = 4096;
/// Placements one lane may have under way at the shard. Past it the shard stops reading the lane
/// (QUIC's flow control then holds back the edge's writes) until some are answered.
pub const LANE_IN_FLIGHT: usize = 4096;

/// What a shard's QUIC server needs.
#[derive(Clone)]
pub struct ShardServer {
    /// This shard's id in the ring.
    pub id: String,
    /// The local shard.
    pub shard: ShardHandle,
    /// The current ring.
    pub ring: watch::Receiver<Arc<Ring>>,
    /// The canvas at start; [`ShardServer::geometry`] grows it to the ring's.
    pub geometry: CanvasGeometry,
    next_subscriber: Arc<AtomicU64>,
}

impl ShardServer {
    /// A server for shard `id`.
    pub fn new(
        id: String,
        shard: ShardHandle,
        ring: watch::Receiver<Arc<Ring>>,
        geometry: CanvasGeometry,
    ) -> Self {
        Self {
            id,
            shard,
            ring,
            geometry,
            next_subscriber: Arc::new(AtomicU64::new(1 << 32)),
        }
    }

    /// The canvas: the size the shard started with, grown to the ring's.
    pub fn geometry(&self) -> CanvasGeometry {
        self.ring.borrow().geometry(self.geometry)
    }

    /// The tiles this shard owns in `ring`.
    fn owned(&self, ring: &Ring) -> HashSet<TileId> {
        ring.tiles_of(&self.id, self.geometry).collect()
    }

    /// Accepts connections until the endpoint closes. Every ring change is passed on to the
    /// shard, which stops serving the tiles it lost and acquires those it gained.
    pub async fn run(self, endpoint: quinn::Endpoint) {
        let mut ring_changes = self.ring.clone();
        let owner_updates = {
            let server = self.clone();
            tokio::spawn(async move {
                let mut grown_to = server.geometry;
                loop {
                    let ring = ring_changes.borrow_and_update().clone();
                    // A grown canvas first: the tiles it adds must exist before they are owned.
                    // Only when it grew: an extra round trip to the shard on every ring change
                    // would widen the moment in which an edge that already follows the new ring
                    // subscribes to a tile this shard does not yet know it owns.
                    let geometry = ring.geometry(server.geometry);
                    if geometry != grown_to {
                        server.shard.grow(geometry).await;
                        grown_to = geometry;
                    }
                    server
                        .shard
                        .set_ownership(ring.epoch(), Some(server.owned(&ring)))
                        .await;
                    let epoch = ring.epoch();
                    info!(epoch, "ring changed; ownership updated");
                    if ring_changes.changed().await.is_err() {
                        return;
                    }
                }
            })
        };
        while let Some(incoming) = endpoint.accept().await {
            let server = self.clone();
            tokio::spawn(async move {
                match incoming.await {
                    Ok(connection) => server.serve_connection(connection).await,
                    Err(error) => warn!(%error, "refused a QUIC connection"),
                }
            });
        }
        owner_updates.abort();
    }

    async fn serve_connection(self, connection: quinn::Connection) {
        let peer = connection.remote_address();
        info!(%peer, "edge connected");
        loop {
            match connection.accept_bi().await {
                Ok((send, recv)) => {
                    let server = self.clone();
                    tokio::spawn(async move {
                        if let Err(error) = server.serve_stream(send, recv).await {
                            debug!(%error, "stream ended with an error");
                        }
                    });
                }
                Err(error) => {
                    info!(%peer, %error, "edge disconnected");
                    return;
                }
            }
        }
    }

    async fn serve_stream(
        &self,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) -> Result<(), WireError> {
        let Some(frame) = read_frame(&mut recv).await? else {
            return Ok(());
        };
        match Request::decode(&frame)? {
            Request::Place(p) => {
                let reply = self.place(p).await;
                write_frame(&mut send, &reply.encode()).await?;
                let _ = send.finish();
            }
            Request::PlaceLane => self.serve_lane(send, recv).await?,
            Request::PlaceBatch(places) => {
                let action = places.first().and_then(|p| p.action_id);
                let span = tracing::info_span!("place_batch", action_id = ?action, placements = places.len());
                let reply = self.place_batch(places).instrument(span).await;
                write_frame(&mut send, &reply.encode()).await?;
                let _ = send.finish();
            }
            Request::Subscribe { tile, known_seq } => {
                let span = tracing::info_span!("tile_stream", %tile);
                self.stream_tile(send, recv, tile, known_seq)
                    .instrument(span)
                    .await?;
            }
            Request::ReadTiles => {
                for t in self.shard.read_tiles().await.unwrap_or_default() {
                    write_frame(
                        &mut send,
                        &TileFrame::encode_snapshot(t.tile, t.seq, &t.pixels),
                    )
                    .await?;
                }
                let _ = send.finish();
            }
        }
        Ok(())
    }

    /// Serves a placement lane until the edge finishes it: each placement is applied on its own
    /// (a slow one holds up none behind it) and answered as it completes; the answers ready
    /// together go out in one write. Once the edge's side ends, the placements under way are
    /// still answered before the shard finishes its side.
    async fn serve_lane(
        &self,
        send: quinn::SendStream,
        mut recv: quinn::RecvStream,
    ) -> Result<(), WireError> {
        let replies = Arc::new(Outgoing::default());
        let writer = {
            let replies = Arc::clone(&replies);
            tokio::spawn(async move { replies.run(send).await })
        };
        let under_way = Arc::new(Semaphore::new(LANE_IN_FLIGHT));
        let read = async {
            while let Some(frame) = read_frame(&mut recv).await? {
                let LanePlace { id, place } = LanePlace::decode(&frame)?;
                let permit = Arc::clone(&under_way)
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed");
                let server = self.clone();
                let replies = Arc::clone(&replies);
                tokio::spawn(async move {
                    let reply = server.place(place).await;
                    replies.push(|frames| LaneReply { id, reply }.put_frame(frames));
                    drop(permit);
                });
            }
            Ok::<_, WireError>(())
        }
        .await;
        let _all_answered = under_way
            .acquire_many(LANE_IN_FLIGHT as u32)
            .await
            .expect("the semaphore is never closed");
        replies.close();
        let written = writer
            .await
            .unwrap_or_else(|_| Err(WireError::Malformed("lane writer panicked".into())));
        read.and(written)
    }

    async fn place(&self, p: WirePlace) -> PlaceReply {
        // The edge's correlation id: this shard's lines for the placement name it too.
        let span = tracing::info_span!(
            "placement",
            placement_id = %format!("{:016x}", p.placement_id),
            x = p.x,
            y = p.y,
            user_id = p.user_id
        );
        self.place_traced(p).instrument(span).await
    }

    async fn place_traced(&self, p: WirePlace) -> PlaceReply {
        match self.place_owned(p).await {
            Ok(placed) => {
                debug!(seq = placed.seq, "placement applied");
                PlaceReply::Placed { seq: placed.seq }
            }
            Err(why) => {
                debug!(?why, "placement refused");
                PlaceReply::Refused(why)
            }
        }
    }

    /// Applies a batch: each placement as if it came alone, all at once, so the shard's group
    /// commit writes them together.
    async fn place_batch(&self, places: Vec<WirePlace>) -> BatchReply {
        let placed = join_all(places.into_iter().map(|p| self.place_owned(p))).await;
        BatchReply(placed.into_iter().map(|r| r.map(|_| ())).collect())
    }

    /// Applies one placement of a tile this shard owns at the edge's epoch.
    async fn place_owned(&self, p: WirePlace) -> Result<Placed, PlaceRefusal> {
        let ring = self.ring.borrow().clone();
        let Some((tile, _, _)) = self.geometry().locate(p.x.into(), p.y.into()) else {
            return Err(PlaceRefusal::InvalidCoords);
        };
        if ring.owner(tile).id != self.id || p.epoch > ring.epoch() {
            // Not ours, or the edge knows a newer ring than we do: let it re-route.
            return Err(PlaceRefusal::NotOwner);
        }
        let request = PlaceRequest {
            x: p.x.into(),
            y: p.y.into(),
            color: p.color,
            user_id: p.user_id,
            placed_at: p.placed_at,
            action_id: p.action_id,
            placement_id: p.placement_id,
        };
        self.shard.place(request).await.map_err(|e| match e {
            PlaceError::InvalidCoords => PlaceRefusal::InvalidCoords,
            PlaceError::InvalidColor => PlaceRefusal::InvalidColor,
            PlaceError::NotOwner => PlaceRefusal::NotOwner,
            PlaceError::Unavailable | PlaceError::NoAnswer => PlaceRefusal::Unavailable,
        })
    }

    /// Streams one tile to an edge until the edge closes the stream; resets it when the edge is
    /// too slow or the tile is not ours (or stops being ours: the edge follows the ring to the
    /// new owner, from the seq it holds).
    async fn stream_tile(
        &self,
        mut send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        tile: TileId,
        known_seq: Option<u64>,
    ) -> Result<(), WireError> {
        if !self.geometry().contains_tile(tile) || self.ring.borrow().owner(tile).id != self.id {
            let _ = send.reset(quinn::VarInt::from_u32(1));
            return Ok(());
        }
        let subscriber = self.next_subscriber.fetch_add(1, Ordering::Relaxed);
        let Some(mut messages) = self
            .shard
            .attach_bounded(subscriber, TILE_STREAM_QUEUE)
            .await
        else {
            let _ = send.reset(quinn::VarInt::from_u32(2));
            return Ok(());
        };
        self.shard.subscribe(subscriber, tile, known_seq).await;
        let mut ring = self.ring.clone();
        let result = loop {
            tokio::select! {
                changed = ring.changed() => {
                    let moved = changed.is_err() || ring.borrow_and_update().owner(tile).id != self.id;
                    if moved {
                        let _ = send.reset(quinn::VarInt::from_u32(4));
                        break Ok(());
                    }
                }
                message = messages.recv() => match message {
                    Some(ShardMessage::Snapshot(s)) => {
                        if let Err(e) = write_frame(&mut send, &TileFrame::encode_snapshot(s.tile, s.seq, &s.pixels)).await {
                            break Err(e);
                        }
                    }
                    Some(ShardMessage::Batch(b)) => {
                        if let Err(e) = write_frame(&mut send, &TileFrame::encode_batch(b.tile, b.first_seq, &b.changes, b.applied_at_ms)).await {
                            break Err(e);
                        }
                    }
                    None => {
                        // The shard dropped us (too slow): the edge resubscribes from its seq.
                        let _ = send.reset(quinn::VarInt::from_u32(3));
                        break Ok(());
                    }
                },
                // The edge finished or reset its side: it unsubscribed.
                _ = recv.read_to_end(0) => break Ok(()),
            }
        };
        self.shard.detach(subscriber).await;
        result
    }
}
