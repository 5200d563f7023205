//! The WebSocket close codes an edge closes a connection with (`docs/PROTOCOL.md`, "Closing").
//! A client that sees [`LAGGING`] or [`UNRESPONSIVE`] reconnects and resubscribes with the seqs
//! it holds; [`UNAUTHORIZED`] needs a new session first.

/// The server is shutting down.
pub const GOING_AWAY: u16 = 1001;
/// Flood: more messages than the per-connection limit.
pub const POLICY: u16 = 1008;
/// A message over the hard size limit.
pub const TOO_BIG: u16 = 1009;
/// The client fell too far behind: its outgoing queue overflowed, or it stopped reading.
pub const LAGGING: u16 = 4000;
/// Nothing heard from the client (not even a pong) for too long.
pub const UNRESPONSIVE: u16 = 4002;
/// No valid session.
pub const UNAUTHORIZED: u16 = 4401;
