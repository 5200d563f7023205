//! The cluster of place: what lets the same edge and shard code run as separate processes.
//!
//! # Layout
//! - [`ring`]: which shard owns which tile (consistent hashing with virtual nodes, with epochs).
//! - [`ring_store`]: the ring in Redis, and watching it.
//! - [`reshard`]: changing the ring while the cluster serves (one change at a time, progress,
//!   shards' reports).
//! - [`failover`]: a shard's supervisor: its reports, the failover of silent shards, and the
//!   rejoin of a shard a failover took out.
//! - [`tls`]: the cluster's certificate authority and node identities, and the mutually
//!   authenticated QUIC configurations built from them.
//! - [`wire`]: the edge-shard messages and their framing on QUIC streams.
//! - [`lane`]: the long-lived stream that carries an edge's placements to a shard.
//! - [`shard_server`]: a shard's QUIC server, bridging streams to its local shard.
//! - [`client`]: an edge's QUIC client: placements routed by the ring, tile streams, reads.

pub mod client;
pub mod failover;
pub mod lane;
pub mod reshard;
pub mod ring;
pub mod ring_store;
pub mod shard_server;
pub mod tls;
pub mod wire;

pub use client::{ClusterClient, TileStream};
pub use ring::{Ring, RingError, ShardInfo};
pub use ring_store::{RingStore, RingStoreError};
pub use shard_server::ShardServer;
