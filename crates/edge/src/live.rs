//! Live changes every edge applies within a second: the cooldown an administrator sets, the
//! canvas size when an administrator grows it, sessions that end (logout), whose open
//! WebSockets close at once, and changes of the protected regions (each edge reads them again
//! from the store: [`crate::regions`]).
//!
//! In `place serve` an announcement is applied directly. In the cluster it is also published on
//! the Redis channel `place:NAME:live`, and every edge applies what it receives there; the
//! cooldown and the canvas size are kept in `place:NAME:settings` as well, so an edge that starts, or whose
//! subscription broke for a while, reads the current value (it re-reads it on every
//! resubscription and every [`SETTINGS_REFRESH`]). Each edge also reports there how many
//! connections it holds (`place:NAME:online`), for the administrators' figures.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use place_tiles::CanvasGeometry;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use crate::cooldown::MAX_COOLDOWN_MS;
use crate::Edge;

/// How often an edge re-reads the shared settings even when no announcement arrives.
pub const SETTINGS_REFRESH: Duration = Duration::from_secs(5);

/// Something every edge must act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LiveEvent {
    /// The cooldown changed.
    Cooldown {
        /// The new cooldown.
        cooldown_ms: u64,
    },
    /// The canvas grew to this size (a smaller one is ignored: the canvas only grows).
    Canvas {
        /// The new width.
        width: u32,
        /// The new height.
        height: u32,
    },
    /// A session ended: its WebSockets close with 4401.
    SessionEnded {
        /// The session id.
        session: String,
    },
    /// A protected region was made or deleted: read them again.
    RegionsChanged,
}

/// An announcement could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// The cooldown is out of range.
    #[error("the cooldown must be between 0 and {} seconds", MAX_COOLDOWN_MS / 1000)]
    CooldownOutOfRange,
    /// Redis did not take it.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Where announcements go.
pub enum LiveBus {
    /// This process only (`place serve`).
    Local,
    /// Every edge of a cluster, through Redis.
    Redis(Box<RedisBus>),
}

/// The cluster's announcement channel and settings in Redis.
pub struct RedisBus {
    client: redis::Client,
    commands: ConnectionManager,
    channel: String,
    settings_key: String,
    online_key: String,
}

impl RedisBus {
    /// The bus of the cluster whose keys start with `prefix` (`place:NAME:`).
    pub fn new(client: redis::Client, commands: ConnectionManager, prefix: &str) -> Self {
        Self {
            client,
            commands,
            channel: format!("{prefix}live"),
            settings_key: format!("{prefix}settings"),
            online_key: format!("{prefix}online"),
        }
    }

    async fn publish(&self, event: &LiveEvent) -> Result<(), LiveError> {
        let payload = serde_json::to_string(event).unwrap_or_default();
        let mut pipe = redis::pipe();
        match event {
            LiveEvent::Cooldown { cooldown_ms } => {
                pipe.hset(&self.settings_key, "cooldown_ms", cooldown_ms)
                    .ignore();
            }
            LiveEvent::Canvas { width, height } => {
                pipe.hset(&self.settings_key, "canvas", format!("{width}x{height}"))
                    .ignore();
            }
            LiveEvent::SessionEnded { .. } | LiveEvent::RegionsChanged => {}
        }
        pipe.publish(&self.channel, payload).ignore();
        pipe.query_async::<()>(&mut self.commands.clone()).await?;
        Ok(())
    }

    /// The stored cooldown and canvas size, each if it was ever set.
    async fn stored_settings(&self) -> Result<(Option<u64>, Option<String>), redis::RedisError> {
        redis::cmd("HMGET")
            .arg(&self.settings_key)
            .arg("cooldown_ms")
            .arg("canvas")
            .query_async(&mut self.commands.clone())
            .await
    }
}

impl RedisBus {
    /// Records how many connections `node` holds now (`count:epoch ms` in the `online` hash).
    async fn report_online(&self, node: &str, count: usize) -> Result<(), redis::RedisError> {
        redis::cmd("HSET")
            .arg(&self.online_key)
            .arg(node)
            .arg(format!("{count}:{}", crate::now_ms()))
            .query_async(&mut self.commands.clone())
            .await
    }

    /// Connections the other edges reported within the last three [`SETTINGS_REFRESH`]es.
    pub(crate) async fn online_elsewhere(&self, node: &str) -> Result<u64, redis::RedisError> {
        let reports: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&self.online_key)
            .query_async(&mut self.commands.clone())
            .await?;
        let fresh_since = crate::now_ms() - 3 * SETTINGS_REFRESH.as_millis() as i64;
        Ok(reports
            .iter()
            .filter(|(edge, _)| edge.as_str() != node)
            .filter_map(|(_, report)| {
                let (count, at) = report.split_once(':')?;
                let at: i64 = at.parse().ok()?;
                (at >= fresh_since).then(|| count.parse::<u64>().ok())?
            })
            .sum())
    }
}

/// What this edge's connections watch.
pub struct LiveState {
    cooldown_ms: watch::Sender<u64>,
    canvas: watch::Sender<CanvasGeometry>,
    sessions_ended: broadcast::Sender<Arc<str>>,
    /// Counts announced changes of the regions.
    regions_changed: watch::Sender<u64>,
}

impl LiveState {
    /// Starts with `cooldown_ms` on a canvas of `canvas`.
    pub fn new(cooldown_ms: u64, canvas: CanvasGeometry) -> Self {
        Self {
            cooldown_ms: watch::Sender::new(cooldown_ms),
            canvas: watch::Sender::new(canvas),
            sessions_ended: broadcast::channel(64).0,
            regions_changed: watch::Sender::new(0),
        }
    }

    /// The canvas as it is now.
    pub fn canvas(&self) -> CanvasGeometry {
        *self.canvas.borrow()
    }

    /// Growths of the canvas.
    pub fn watch_canvas(&self) -> watch::Receiver<CanvasGeometry> {
        self.canvas.subscribe()
    }

    /// The current cooldown.
    pub fn cooldown_ms(&self) -> u64 {
        *self.cooldown_ms.borrow()
    }

    /// Changes of the cooldown.
    pub fn watch_cooldown(&self) -> watch::Receiver<u64> {
        self.cooldown_ms.subscribe()
    }

    /// Ids of sessions that end from now on.
    pub fn watch_sessions_ended(&self) -> broadcast::Receiver<Arc<str>> {
        self.sessions_ended.subscribe()
    }

    /// Announced changes of the regions.
    pub fn watch_regions(&self) -> watch::Receiver<u64> {
        self.regions_changed.subscribe()
    }

    /// Applies an event to this edge.
    pub fn apply(&self, event: &LiveEvent) {
        match event {
            LiveEvent::Cooldown { cooldown_ms } => {
                let changed = self.cooldown_ms.send_if_modified(|current| {
                    let changed = *current != *cooldown_ms;
                    *current = *cooldown_ms;
                    changed
                });
                if changed {
                    info!(cooldown_ms, "cooldown changed");
                }
            }
            LiveEvent::Canvas { width, height } => {
                let Ok(announced) = CanvasGeometry::new(*width, *height) else {
                    warn!(
                        width,
                        height, "ignoring an announced canvas of an invalid size"
                    );
                    return;
                };
                // Sizes only grow: of two sizes, the larger on each side is the newer.
                let grew = self.canvas.send_if_modified(|current| {
                    let grown = current.union(announced);
                    let changed = grown != *current;
                    *current = grown;
                    changed
                });
                if grew {
                    info!(width, height, "canvas grew");
                }
            }
            LiveEvent::SessionEnded { session } => {
                // No receiver means no open connection at all: nothing to close.
                let _ = self.sessions_ended.send(session.as_str().into());
            }
            LiveEvent::RegionsChanged => self.regions_changed.send_modify(|n| *n += 1),
        }
    }
}

impl LiveBus {
    /// Applies `event` here and, in the cluster, announces it to every other edge.
    pub async fn announce(&self, state: &LiveState, event: LiveEvent) -> Result<(), LiveError> {
        if let LiveEvent::Cooldown { cooldown_ms } = event {
            if cooldown_ms > MAX_COOLDOWN_MS as u64 {
                return Err(LiveError::CooldownOutOfRange);
            }
        }
        if let LiveBus::Redis(bus) = self {
            bus.publish(&event).await?;
        }
        state.apply(&event);
        Ok(())
    }
}

/// Follows the cluster's announcements for as long as the edge lives, resubscribing after any
/// break (with backoff and jitter) and re-reading the stored settings each time.
pub(crate) async fn follow(edge: Weak<Edge>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(strong) = edge.upgrade() else { return };
        let LiveBus::Redis(bus) = &strong.live_bus else {
            return;
        };
        let client = bus.client.clone();
        let channel = bus.channel.clone();
        drop(strong);
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    debug!(%channel, "following live announcements");
                    backoff = Duration::from_millis(100);
                    receive(&edge, pubsub).await;
                }
                Err(error) => warn!(%error, "cannot subscribe to live announcements"),
            },
            Err(error) => warn!(%error, "cannot connect for live announcements"),
        }
        let jitter = Duration::from_millis(rand::random::<u64>() % 100);
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Applies announcements until the subscription breaks or the edge is gone.
async fn receive(edge: &Weak<Edge>, mut pubsub: redis::aio::PubSub) {
    refresh_settings(edge).await;
    let mut refresh = tokio::time::interval(SETTINGS_REFRESH);
    refresh.reset();
    let mut messages = pubsub.on_message();
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else { return };
                let Some(edge) = edge.upgrade() else { return };
                match serde_json::from_slice::<LiveEvent>(message.get_payload_bytes()) {
                    Ok(event) => edge.live.apply(&event),
                    Err(error) => warn!(%error, "ignoring a malformed live announcement"),
                }
            }
            _ = refresh.tick() => refresh_settings(edge).await,
        }
    }
}

async fn refresh_settings(edge: &Weak<Edge>) {
    let Some(edge) = edge.upgrade() else { return };
    let LiveBus::Redis(bus) = &edge.live_bus else {
        return;
    };
    match bus.stored_settings().await {
        Ok((cooldown_ms, canvas)) => {
            if let Some(cooldown_ms) = cooldown_ms {
                edge.live.apply(&LiveEvent::Cooldown { cooldown_ms });
            }
            let size = canvas.as_deref().and_then(|c| c.split_once('x'));
            if let Some((Ok(width), Ok(height))) = size.map(|(w, h)| (w.parse(), h.parse())) {
                edge.live.apply(&LiveEvent::Canvas { width, height });
            }
        }
        Err(error) => debug!(%error, "cannot read the shared settings now"),
    }
    if let Err(error) = bus
        .report_online(&edge.config.node_id, edge.tasks.len())
        .await
    {
        debug!(%error, "cannot report the connections online now");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_have_a_stable_wire_form() {
        let event = LiveEvent::Cooldown { cooldown_ms: 1500 };
        let text = serde_json::to_string(&event).expect("json");
        assert_eq!(text, r#"{"kind":"cooldown","cooldown_ms":1500}"#);
        assert_eq!(
            serde_json::from_str::<LiveEvent>(&text).expect("back"),
            event
        );
        let ended = LiveEvent::SessionEnded {
            session: "abc".into(),
        };
        assert_eq!(
            serde_json::to_string(&ended).expect("json"),
            r#"{"kind":"session_ended","session":"abc"}"#
        );
    }

    #[tokio::test]
    async fn applying_a_cooldown_wakes_watchers_once() {
        let state = LiveState::new(5000, CanvasGeometry::default());
        let mut watcher = state.watch_cooldown();
        state.apply(&LiveEvent::Cooldown { cooldown_ms: 5000 });
        assert!(!watcher.has_changed().expect("open"), "same value: no wake");
        state.apply(&LiveEvent::Cooldown { cooldown_ms: 1000 });
        assert!(watcher.has_changed().expect("open"));
        assert_eq!(*watcher.borrow_and_update(), 1000);
        assert_eq!(state.cooldown_ms(), 1000);
    }

    #[tokio::test]
    async fn the_canvas_only_grows_and_wakes_watchers_when_it_does() {
        let size = |w, h| CanvasGeometry::new(w, h).expect("valid");
        let state = LiveState::new(5000, size(100, 100));
        let mut watcher = state.watch_canvas();
        let event = |width, height| LiveEvent::Canvas { width, height };
        assert_eq!(
            serde_json::to_string(&event(300, 100)).expect("json"),
            r#"{"kind":"canvas","width":300,"height":100}"#
        );
        state.apply(&event(50, 50));
        state.apply(&event(0, 50));
        assert!(!watcher.has_changed().expect("open"), "no growth: no wake");
        state.apply(&event(300, 80));
        assert!(watcher.has_changed().expect("open"));
        assert_eq!(*watcher.borrow_and_update(), size(300, 100));
        // A late announcement of an older size takes nothing back.
        state.apply(&event(200, 120));
        assert_eq!(state.canvas(), size(300, 120));
    }

    #[tokio::test]
    async fn an_out_of_range_cooldown_is_refused() {
        let state = LiveState::new(5000, CanvasGeometry::default());
        let result = LiveBus::Local
            .announce(
                &state,
                LiveEvent::Cooldown {
                    cooldown_ms: MAX_COOLDOWN_MS as u64 + 1,
                },
            )
            .await;
        assert!(matches!(result, Err(LiveError::CooldownOutOfRange)));
        assert_eq!(state.cooldown_ms(), 5000);
    }
}
