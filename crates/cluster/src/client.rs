//! An edge's QUIC side: one connection per shard (opened on first use, reopened after a
//! failure), placements routed to the tile's owner in the current ring, tile streams, reads.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use place_shard::{PlaceError, PlaceRequest, Placed, TileSnapshot};
use place_tiles::{CanvasGeometry, TileId, TILE_SIZE};
use thiserror::Error;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::lane::{Lane, LaneError};
use crate::ring::{Ring, ShardInfo};
use crate::tls::{NodeIdentity, TlsError, SHARD_NAME};
use crate::wire::{
    read_frame, write_frame, BatchReply, PlaceRefusal, PlaceReply, Request, TileFrame, WireError,
    WirePlace, MAX_PLACE_BATCH,
};

/// How long a placement may take before it is answered `UNAVAILABLE` (a dead shard must fail
/// fast, not hang the player).
pub const PLACE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting to a shard may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// After a shard could not be reached, requests for it fail at once for this long (then one
/// more connection attempt is made): a dead shard's tiles fail fast instead of each request
/// waiting out its own connection attempt.
pub const RETRY_UNREACHABLE_AFTER: Duration = Duration::from_millis(300);

/// Why talking to a shard failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// Could not connect.
    #[error("shard {shard} at {addr}: {reason}")]
    Connect {
        /// The shard's id.
        shard: String,
        /// Its address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The connection or stream failed.
    #[error("shard stream: {0}")]
    Stream(String),
    /// The shard sent something malformed.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The shard refused the tile stream (not its tile, or it is stopping).
    #[error("the shard refused the tile stream")]
    Refused,
    /// Too slow.
    #[error("timed out")]
    Timeout,
    /// Certificates.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The edge's link to every shard of the ring.
pub struct ClusterClient {
    endpoint: quinn::Endpoint,
    ring: watch::Receiver<Arc<Ring>>,
    /// The canvas at start; [`ClusterClient::geometry`] grows it to the ring's.
    geometry: CanvasGeometry,
    connections: Mutex<HashMap<String, quinn::Connection>>,
    /// The placement lane to each shard, on its current connection.
    lanes: Mutex<HashMap<String, Arc<Lane>>>,
    /// Shards that could not be reached, and until when requests for them fail at once.
    unreachable: Mutex<HashMap<String, tokio::time::Instant>>,
    /// One connection attempt (or lane opening) per shard at a time: the requests that need a
    /// connection meanwhile wait for it instead of each opening their own (after a failover,
    /// every watched tile and placement of the dead shard's tiles turns to its new owners at
    /// once).
    connecting: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ClusterClient {
    /// A client presenting `identity`, routing by `ring`.
    pub fn new(
        identity: &NodeIdentity,
        ring: watch::Receiver<Arc<Ring>>,
        geometry: CanvasGeometry,
    ) -> Result<Self, ClientError> {
        let mut endpoint = quinn::Endpoint::client(SocketAddr::from(([0, 0, 0, 0], 0)))
            .map_err(|e| ClientError::Stream(format!("binding a UDP socket: {e}")))?;
        endpoint.set_default_client_config(identity.client_config()?);
        Ok(Self {
            endpoint,
            ring,
            geometry,
            connections: Mutex::new(HashMap::new()),
            lanes: Mutex::new(HashMap::new()),
            unreachable: Mutex::new(HashMap::new()),
            connecting: Mutex::new(HashMap::new()),
        })
    }

    /// The current ring.
    pub fn ring(&self) -> Arc<Ring> {
        self.ring.borrow().clone()
    }

    /// The canvas: the size the edge started with, grown to the ring's.
    fn geometry(&self) -> CanvasGeometry {
        self.ring.borrow().geometry(self.geometry)
    }

    /// Waits for the next ring change (at most `within`).
    pub async fn ring_changed(&self, within: Duration) {
        let mut ring = self.ring.clone();
        let _ = tokio::time::timeout(within, ring.changed()).await;
    }

    /// Before routing again a placement that `epoch`'s owner refused as not its own: at once if
    /// the ring has moved on since, else after `wait` or the next ring change, whichever comes
    /// first (the edge's ring is behind, or the new owner is still loading the tile).
    async fn before_rerouting(&self, epoch: u64, wait: Duration) {
        if self.ring().epoch() == epoch {
            self.ring_changed(wait).await;
        }
    }

    /// The open connection to `shard`, if any.
    fn open_connection(&self, shard: &ShardInfo) -> Option<quinn::Connection> {
        self.connections
            .lock()
            .get(&shard.id)
            .filter(|c| c.close_reason().is_none())
            .cloned()
    }

    async fn connection(&self, shard: &ShardInfo) -> Result<quinn::Connection, ClientError> {
        if let Some(c) = self.open_connection(shard) {
            return Ok(c);
        }
        let attempt = Arc::clone(self.connecting.lock().entry(shard.id.clone()).or_default());
        let _one_at_a_time = attempt.lock().await;
        if let Some(c) = self.open_connection(shard) {
            return Ok(c);
        }
        let fail = |reason: String| ClientError::Connect {
            shard: shard.id.clone(),
            addr: shard.addr.clone(),
            reason,
        };
        if let Some(until) = self.unreachable.lock().get(&shard.id) {
            if *until > tokio::time::Instant::now() {
                return Err(fail("unreachable a moment ago".into()));
            }
        }
        let connected = self.connect(shard, fail).await;
        let mut unreachable = self.unreachable.lock();
        match &connected {
            Ok(_) => unreachable.remove(&shard.id),
            Err(_) => unreachable.insert(
                shard.id.clone(),
                tokio::time::Instant::now() + RETRY_UNREACHABLE_AFTER,
            ),
        };
        connected
    }

    async fn connect(
        &self,
        shard: &ShardInfo,
        fail: impl Fn(String) -> ClientError,
    ) -> Result<quinn::Connection, ClientError> {
        let addr = tokio::net::lookup_host(&shard.addr)
            .await
            .map_err(|e| fail(format!("resolving: {e}")))?
            .next()
            .ok_or_else(|| fail("resolves to no address".into()))?;
        let connecting = self
            .endpoint
            .connect(addr, SHARD_NAME)
            .map_err(|e| fail(e.to_string()))?;
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| fail("connect timed out".into()))?
            .map_err(|e| fail(e.to_string()))?;
        debug!(shard = %shard.id, %addr, "connected to shard");
        self.connections
            .lock()
            .insert(shard.id.clone(), connection.clone());
        Ok(connection)
    }

    /// The placement lane to `shard`, opened (with the connection, if need be) when there is
    /// none open.
    async fn lane(&self, shard: &ShardInfo) -> Result<Arc<Lane>, ClientError> {
        let connection = self.connection(shard).await?;
        let open_lane = || {
            self.lanes
                .lock()
                .get(&shard.id)
                .filter(|lane| lane.is_open_on(&connection))
                .cloned()
        };
        if let Some(lane) = open_lane() {
            return Ok(lane);
        }
        let attempt = Arc::clone(self.connecting.lock().entry(shard.id.clone()).or_default());
        let _one_at_a_time = attempt.lock().await;
        if let Some(lane) = open_lane() {
            return Ok(lane);
        }
        let (send, recv) = open_on(&connection, &Request::PlaceLane).await?;
        let lane = Lane::start(&connection, send, recv);
        self.lanes
            .lock()
            .insert(shard.id.clone(), Arc::clone(&lane));
        Ok(lane)
    }

    async fn open(
        &self,
        shard: &ShardInfo,
        request: &Request,
    ) -> Result<(quinn::SendStream, quinn::RecvStream), ClientError> {
        let connection = self.connection(shard).await?;
        open_on(&connection, request).await
    }

    /// Places a pixel at the owner of its tile. A shard that does not own the tile (the ring
    /// changed, or the new owner is still loading it mid-handoff) applied nothing, so the edge
    /// routes it again by the newest ring, with a short growing pause, until [`PLACE_TIMEOUT`]:
    /// a reshard is invisible to the player. A shard that cannot be reached is `Unavailable`
    /// (nothing was sent); one that was sent the placement but does not answer in time is
    /// `NoAnswer` (it may or may not have applied it, so nobody must retry blindly).
    pub async fn place(&self, request: PlaceRequest) -> Result<Placed, PlaceError> {
        let Some((tile, _, _)) = self.geometry().locate(request.x, request.y) else {
            return Err(PlaceError::InvalidCoords);
        };
        let deadline = tokio::time::Instant::now() + PLACE_TIMEOUT;
        let mut pause = Duration::from_millis(10);
        while tokio::time::Instant::now() < deadline {
            let ring = self.ring();
            let owner = ring.owner(tile).clone();
            let wire = wire_place(&request, ring.epoch());
            let lane = match tokio::time::timeout_at(deadline, self.lane(&owner)).await {
                Ok(Ok(lane)) => lane,
                Ok(Err(error)) => {
                    warn!(shard = %owner.id, %error, "placement not sent: shard unreachable");
                    return Err(PlaceError::Unavailable);
                }
                Err(_) => return Err(PlaceError::Unavailable),
            };
            let reply = match tokio::time::timeout_at(deadline, lane.place(wire)).await {
                Ok(Ok(reply)) => reply,
                // Nothing was sent: the next turn opens a new lane (or finds the shard gone).
                Ok(Err(LaneError::Ended)) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                    continue;
                }
                Ok(Err(LaneError::NoAnswer)) => {
                    warn!(shard = %owner.id, "placement failed: the lane ended before its answer");
                    return Err(PlaceError::NoAnswer);
                }
                Err(_) => {
                    warn!(shard = %owner.id, "placement timed out");
                    return Err(PlaceError::NoAnswer);
                }
            };
            match reply {
                PlaceReply::Placed { seq } => return Ok(Placed { seq }),
                PlaceReply::Refused(PlaceRefusal::NotOwner) => {
                    debug!(shard = %owner.id, %tile, epoch = ring.epoch(), "not the owner; routing again");
                    self.before_rerouting(ring.epoch(), pause).await;
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                PlaceReply::Refused(why) => return Err(refusal_error(why)),
            }
        }
        Err(PlaceError::Unavailable)
    }

    /// Places a batch of placements, one stream per owning shard (per [`MAX_PLACE_BATCH`]), all
    /// at once: an administrator's restore. Each is answered in order. Placements refused as
    /// `NotOwner` are re-routed after the ring changes (twice at most); a shard that fails or does
    /// not answer within [`PLACE_TIMEOUT`] makes its placements `Unavailable` (applied or not:
    /// the caller reads the canvas or the log to know).
    pub async fn place_batch(&self, requests: &[PlaceRequest]) -> Vec<Result<(), PlaceError>> {
        let mut results = vec![Err(PlaceError::Unavailable); requests.len()];
        let mut todo: Vec<usize> = Vec::with_capacity(requests.len());
        for (i, r) in requests.iter().enumerate() {
            match self.geometry().locate(r.x, r.y) {
                Some(_) => todo.push(i),
                None => results[i] = Err(PlaceError::InvalidCoords),
            }
        }
        let mut pause = Duration::from_millis(10);
        for _attempt in 0..8 {
            if todo.is_empty() {
                break;
            }
            let ring = self.ring();
            let mut by_owner: HashMap<String, (ShardInfo, Vec<usize>)> = HashMap::new();
            for &i in &todo {
                let r = &requests[i];
                let tile = TileId::new((r.x / TILE_SIZE) as u16, (r.y / TILE_SIZE) as u16);
                let owner = ring.owner(tile);
                by_owner
                    .entry(owner.id.clone())
                    .or_insert_with(|| (owner.clone(), Vec::new()))
                    .1
                    .push(i);
            }
            let chunks = by_owner.into_values().flat_map(|(shard, indices)| {
                indices
                    .chunks(MAX_PLACE_BATCH)
                    .map(|chunk| (shard.clone(), chunk.to_vec()))
                    .collect::<Vec<_>>()
            });
            let sends = chunks.map(|(shard, indices)| {
                let places: Vec<WirePlace> = indices
                    .iter()
                    .map(|&i| wire_place(&requests[i], ring.epoch()))
                    .collect();
                async move { (self.send_batch(&shard, places).await, indices) }
            });
            let mut retry = Vec::new();
            for (reply, indices) in futures_util::future::join_all(sends).await {
                for (status, i) in reply.into_iter().zip(indices) {
                    match status {
                        Err(PlaceRefusal::NotOwner) => retry.push(i),
                        other => results[i] = other.map_err(refusal_error),
                    }
                }
            }
            if !retry.is_empty() {
                self.before_rerouting(ring.epoch(), pause).await;
                pause = (pause * 2).min(Duration::from_millis(400));
            }
            todo = retry;
        }
        results
    }

    /// Sends one batch to one shard; every placement is `Unavailable` if the exchange fails.
    async fn send_batch(
        &self,
        shard: &ShardInfo,
        places: Vec<WirePlace>,
    ) -> Vec<Result<(), PlaceRefusal>> {
        let count = places.len();
        let exchange = async {
            let (send, mut recv) = self.open(shard, &Request::PlaceBatch(places)).await?;
            drop(send);
            let frame = read_frame(&mut recv)
                .await?
                .ok_or_else(|| ClientError::Stream("no reply".into()))?;
            Ok::<_, ClientError>(BatchReply::decode(&frame)?)
        };
        match tokio::time::timeout(PLACE_TIMEOUT, exchange).await {
            Ok(Ok(BatchReply(statuses))) if statuses.len() == count => statuses,
            Ok(Ok(_)) => {
                warn!(shard = %shard.id, "a batch reply of the wrong length");
                vec![Err(PlaceRefusal::Unavailable); count]
            }
            Ok(Err(error)) => {
                warn!(shard = %shard.id, %error, "batch placement failed");
                vec![Err(PlaceRefusal::Unavailable); count]
            }
            Err(_) => {
                warn!(shard = %shard.id, "batch placement timed out");
                vec![Err(PlaceRefusal::Unavailable); count]
            }
        }
    }

    /// Each shard of the ring and whether it can be reached now (a QUIC connection is open or
    /// opens within [`CONNECT_TIMEOUT`]).
    pub async fn shard_health(&self) -> Vec<(ShardInfo, bool)> {
        let ring = self.ring();
        let checks = ring.shards().iter().map(|shard| async move {
            let reachable = self.connection(shard).await.is_ok();
            (shard.clone(), reachable)
        });
        futures_util::future::join_all(checks).await
    }

    /// Opens a stream of one tile from its owner: the answer to `known_seq`, then every batch.
    pub async fn subscribe(
        &self,
        tile: TileId,
        known_seq: Option<u64>,
    ) -> Result<TileStream, ClientError> {
        let owner = self.ring().owner(tile).clone();
        let (send, recv) = tokio::time::timeout(
            CONNECT_TIMEOUT,
            self.open(&owner, &Request::Subscribe { tile, known_seq }),
        )
        .await
        .map_err(|_| ClientError::Timeout)??;
        Ok(TileStream { _send: send, recv })
    }

    /// Every tile of the canvas, read from all shards at once. Mid-handoff a moving tile may be
    /// served by neither owner (the new one is still loading it) or by both (the old one has not
    /// seen the ring yet; the higher seq wins): the read is repeated, briefly, until every tile
    /// is there.
    pub async fn read_tiles(&self) -> Result<Vec<TileSnapshot>, ClientError> {
        let deadline = tokio::time::Instant::now() + PLACE_TIMEOUT;
        loop {
            let tiles = self.read_tiles_once().await?;
            if tiles.len() == self.geometry().tile_count() {
                return Ok(tiles.into_values().collect());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Stream(format!(
                    "{} of {} tiles are served (tiles are moving between shards)",
                    tiles.len(),
                    self.geometry().tile_count()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn read_tiles_once(&self) -> Result<HashMap<TileId, TileSnapshot>, ClientError> {
        let ring = self.ring();
        let reads = ring.shards().iter().map(|shard| async move {
            let (send, mut recv) = self.open(shard, &Request::ReadTiles).await?;
            drop(send);
            let mut tiles = Vec::new();
            while let Some(frame) = read_frame(&mut recv).await? {
                if let TileFrame::Snapshot { tile, seq, pixels } = TileFrame::decode(&frame)? {
                    tiles.push(TileSnapshot { tile, seq, pixels });
                }
            }
            Ok::<_, ClientError>(tiles)
        });
        let mut all: HashMap<TileId, TileSnapshot> = HashMap::new();
        for result in futures_util::future::join_all(reads).await {
            for tile in result? {
                if all.get(&tile.tile).is_none_or(|held| held.seq < tile.seq) {
                    all.insert(tile.tile, tile);
                }
            }
        }
        Ok(all)
    }
}

/// Whether a shard's process answers a QUIC handshake at `addr` (`host:port`) within `within`,
/// with `config` from [`NodeIdentity::liveness_config`]: a completed handshake, or one the peer
/// refuses (a shard accepts only edges), is an answer; silence until `within` is not. A shard
/// whose reports stopped but whose process still answers is slow, not dead; one killed or paused
/// does not answer.
pub async fn answers(config: &quinn::ClientConfig, addr: &str, within: Duration) -> bool {
    let attempt = async {
        let addr = tokio::net::lookup_host(addr).await.ok()?.next()?;
        let local: SocketAddr = if addr.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let mut endpoint = quinn::Endpoint::client(local).ok()?;
        endpoint.set_default_client_config(config.clone());
        match endpoint.connect(addr, SHARD_NAME).ok()?.await {
            Ok(connection) => {
                connection.close(quinn::VarInt::from_u32(0), b"alive?");
                Some(true)
            }
            // The peer's own refusal, or its stack closing the connection: it runs.
            Err(
                quinn::ConnectionError::TransportError(_)
                | quinn::ConnectionError::ConnectionClosed(_)
                | quinn::ConnectionError::ApplicationClosed(_)
                | quinn::ConnectionError::Reset
                | quinn::ConnectionError::VersionMismatch,
            ) => Some(true),
            Err(_) => Some(false),
        }
    };
    tokio::time::timeout(within, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Checks that a shard answers at `addr` with a certificate of the cluster's authority, and
/// speaks the shard protocol: connects as `identity` and reads the tiles it serves (none, before
/// it joins the ring). Returns how many tiles it served.
pub async fn probe(identity: &NodeIdentity, addr: &str) -> Result<usize, ClientError> {
    let shard = ShardInfo {
        id: "probe".to_owned(),
        addr: addr.to_owned(),
    };
    let ring = Ring::new(0, vec![shard.clone()]).map_err(|e| ClientError::Connect {
        shard: shard.id.clone(),
        addr: addr.to_owned(),
        reason: e.to_string(),
    })?;
    let (_keep, watch) = watch::channel(Arc::new(ring));
    let client = ClusterClient::new(identity, watch, CanvasGeometry::default())?;
    let exchange = async {
        let (send, mut recv) = client.open(&shard, &Request::ReadTiles).await?;
        drop(send);
        let mut tiles = 0;
        while read_frame(&mut recv).await?.is_some() {
            tiles += 1;
        }
        Ok::<_, ClientError>(tiles)
    };
    let tiles = tokio::time::timeout(PLACE_TIMEOUT, exchange)
        .await
        .map_err(|_| ClientError::Timeout)??;
    client.endpoint.close(quinn::VarInt::from_u32(0), b"probed");
    Ok(tiles)
}

/// A placement as it travels, routed at `epoch`.
fn wire_place(r: &PlaceRequest, epoch: u64) -> WirePlace {
    WirePlace {
        x: r.x as u16,
        y: r.y as u16,
        color: r.color,
        user_id: r.user_id,
        placed_at: r.placed_at,
        epoch,
        action_id: r.action_id,
        placement_id: r.placement_id,
    }
}

/// Opens a stream on `connection` and sends `request` on it.
async fn open_on(
    connection: &quinn::Connection,
    request: &Request,
) -> Result<(quinn::SendStream, quinn::RecvStream), ClientError> {
    let (mut send, recv) = connection
        .open_bi()
        .await
        .map_err(|e| ClientError::Stream(e.to_string()))?;
    write_frame(&mut send, &request.encode()).await?;
    Ok((send, recv))
}

/// What a shard's refusal means to the edge.
fn refusal_error(refusal: PlaceRefusal) -> PlaceError {
    match refusal {
        PlaceRefusal::InvalidCoords => PlaceError::InvalidCoords,
        PlaceRefusal::InvalidColor => PlaceError::InvalidColor,
        PlaceRefusal::NotOwner => PlaceError::NotOwner,
        PlaceRefusal::Unavailable => PlaceError::Unavailable,
    }
}

/// One tile's frames from its shard.
pub struct TileStream {
    _send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl TileStream {
    /// The next frame; `None` when the shard ended the stream.
    pub async fn next(&mut self) -> Result<Option<TileFrame>, ClientError> {
        match read_frame(&mut self.recv).await {
            Ok(Some(frame)) => Ok(Some(TileFrame::decode(&frame)?)),
            Ok(None) => Ok(None),
            Err(WireError::Read(quinn::ReadExactError::ReadError(quinn::ReadError::Reset(_)))) => {
                Err(ClientError::Refused)
            }
            Err(e) => Err(e.into()),
        }
    }
}
