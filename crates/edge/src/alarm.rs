//! The placement-spike alarm: each edge counts the placements it makes per square cell of the
//! canvas (`cell` pixels a side) and compares each cell's rate over the last
//! [`RATE_WINDOW_SECS`] seconds with its own moving baseline (an exponentially weighted average
//! of its placements per second, time constant [`BASELINE_SECS`]). A cell whose rate is at least
//! `min_rate` placements a second **and** `factor` times its baseline raises an alarm:
//!
//! - a `warn` log line, `rplace_spike_alarms_total` on `/metrics` (and
//!   `rplace_spike_busiest_cell_rate`, the busiest cell's rate now, every second);
//! - a row of the audit log (`spike-alarm`, by the server: actor 0), which the admin panel lists
//!   (`GET /api/v1/admin/alarms`, from the store, so every edge shows every edge's alarms);
//! - optionally a webhook: the alarm as JSON, POSTed once, within [`WEBHOOK_TIMEOUT`], at most
//!   [`WEBHOOK_IN_FLIGHT`] at a time (more are dropped and logged); never on the placement path;
//! - optionally (the operator's choice, `auto_slow`) an automatic `slow` region over the cell for
//!   a few minutes ([`crate::regions`]): written to the audit log like any region, lifted in one
//!   click from the panel.
//!
//! A cell that alarmed stays quiet for [`QUIET_AFTER_ALARM`] (or its automatic slow-down, if
//! longer). Counting is per edge: behind a load balancer each edge sees its share of a raid, so
//! the thresholds are per edge (documented in the README). The counting itself
//! ([`SpikeDetector`]) is a plain state machine, fed by the placement path and ticked once a
//! second, tested with made-up traffic.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use place_store::{Rect, RegionMode};
use serde_json::{json, Value};
use tracing::{info, warn};

use crate::regions::{NewRegion, SERVER_ACTOR};
use crate::{now_ms, Edge};

/// Seconds over which a cell's rate is measured.
pub const RATE_WINDOW_SECS: usize = 5;
/// Time constant of a cell's baseline (seconds): it follows slow changes of traffic, not a raid.
pub const BASELINE_SECS: f64 = 300.0;
/// A cell that alarmed does not alarm again for this long.
pub const QUIET_AFTER_ALARM: Duration = Duration::from_secs(300);
/// How long a webhook request may take.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// Webhook requests in flight at once; alarms beyond are not sent (and logged).
pub const WEBHOOK_IN_FLIGHT: usize = 4;
/// Alarms raised, ever, by this edge.
pub const SPIKE_ALARMS: &str = "rplace_spike_alarms_total";
/// The busiest cell's placements per second over the last window, on this edge.
pub const BUSIEST_CELL_RATE: &str = "rplace_spike_busiest_cell_rate";

/// How the alarm watches and acts.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeConfig {
    /// A cell's side in pixels.
    pub cell: u32,
    /// Placements a second a cell must reach to alarm, whatever its baseline.
    pub min_rate: u32,
    /// How many times its baseline a cell's rate must reach to alarm.
    pub factor: u32,
    /// Where to POST each alarm as JSON.
    pub webhook: Option<String>,
    /// Slow an alarmed cell down by itself.
    pub auto_slow: Option<AutoSlow>,
}

impl Default for SpikeConfig {
    fn default() -> Self {
        Self {
            cell: 64,
            min_rate: 20,
            factor: 5,
            webhook: None,
            auto_slow: None,
        }
    }
}

/// The automatic slow-down of an alarmed cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoSlow {
    /// How long the slow region lasts.
    pub duration: Duration,
    /// Its cooldown.
    pub cooldown: Duration,
}

/// A cell whose rate spiked.
#[derive(Debug, Clone, PartialEq)]
pub struct Spike {
    /// The cell, clipped to the canvas.
    pub rect: Rect,
    /// Placements a second over the last [`RATE_WINDOW_SECS`].
    pub rate: f64,
    /// The cell's baseline before the spike (placements a second).
    pub baseline: f64,
}

#[derive(Debug, Default)]
struct Cell {
    this_second: u32,
    /// The last [`RATE_WINDOW_SECS`] whole seconds, a ring.
    recent: [u32; RATE_WINDOW_SECS],
    next: usize,
    baseline: f64,
    quiet_until_ms: i64,
}

/// Counts placements per cell and finds spikes: fed by [`SpikeDetector::record`], asked once a
/// second by [`SpikeDetector::tick`].
#[derive(Debug)]
pub struct SpikeDetector {
    cell: u32,
    min_rate: f64,
    factor: f64,
    quiet_ms: i64,
    cells: HashMap<(u32, u32), Cell>,
    busiest: f64,
}

impl SpikeDetector {
    /// A detector with these thresholds; an alarmed cell stays quiet for `quiet`.
    pub fn new(config: &SpikeConfig, quiet: Duration) -> Self {
        Self {
            cell: config.cell.max(1),
            min_rate: f64::from(config.min_rate),
            factor: f64::from(config.factor),
            quiet_ms: i64::try_from(quiet.as_millis()).unwrap_or(i64::MAX),
            cells: HashMap::new(),
            busiest: 0.0,
        }
    }

    /// One placement at pixel `(x, y)`.
    pub fn record(&mut self, x: u32, y: u32) {
        let cell = self
            .cells
            .entry((x / self.cell, y / self.cell))
            .or_default();
        cell.this_second = cell.this_second.saturating_add(1);
    }

    /// Closes the second that ended at `now_ms`: the cells that spiked, each clipped to a canvas
    /// of `width` x `height`. Cells idle long enough are forgotten.
    pub fn tick(&mut self, now_ms: i64, width: u32, height: u32) -> Vec<Spike> {
        let mut spikes = Vec::new();
        let alpha = 1.0 / BASELINE_SECS;
        self.busiest = 0.0;
        for (&(cx, cy), cell) in &mut self.cells {
            let placed = cell.this_second;
            cell.this_second = 0;
            cell.recent[cell.next] = placed;
            cell.next = (cell.next + 1) % RATE_WINDOW_SECS;
            let rate = f64::from(cell.recent.iter().sum::<u32>()) / RATE_WINDOW_SECS as f64;
            self.busiest = self.busiest.max(rate);
            let spiking = rate >= self.min_rate && rate >= self.factor * cell.baseline;
            if spiking && now_ms >= cell.quiet_until_ms {
                cell.quiet_until_ms = now_ms.saturating_add(self.quiet_ms);
                let (x, y) = (cx * self.cell, cy * self.cell);
                spikes.push(Spike {
                    rect: Rect {
                        x,
                        y,
                        width: self.cell.min(width.saturating_sub(x)).max(1),
                        height: self.cell.min(height.saturating_sub(y)).max(1),
                    },
                    rate,
                    baseline: cell.baseline,
                });
            }
            // A raid does not teach the baseline that it is normal.
            if !spiking {
                cell.baseline += (f64::from(placed) - cell.baseline) * alpha;
            }
        }
        self.cells
            .retain(|_, c| c.baseline > 0.001 || c.recent.iter().any(|&n| n > 0));
        spikes
    }

    /// The busiest cell's rate at the last tick.
    pub fn busiest_rate(&self) -> f64 {
        self.busiest
    }

    /// Cells counted now.
    pub fn cells(&self) -> usize {
        self.cells.len()
    }
}

/// An edge's alarm: its detector, and the webhook's client.
pub struct SpikeAlarm {
    config: SpikeConfig,
    detector: Mutex<SpikeDetector>,
    webhook: Option<(reqwest::Client, Arc<tokio::sync::Semaphore>)>,
}

impl SpikeAlarm {
    /// The alarm `config` describes.
    pub fn new(config: SpikeConfig) -> Self {
        let quiet = config.auto_slow.map_or(QUIET_AFTER_ALARM, |slow| {
            slow.duration.max(QUIET_AFTER_ALARM)
        });
        let webhook = config.webhook.as_ref().map(|_| {
            let client = reqwest::Client::builder()
                .timeout(WEBHOOK_TIMEOUT)
                .connect_timeout(WEBHOOK_TIMEOUT)
                .build()
                .unwrap_or_default();
            (
                client,
                Arc::new(tokio::sync::Semaphore::new(WEBHOOK_IN_FLIGHT)),
            )
        });
        Self {
            detector: Mutex::new(SpikeDetector::new(&config, quiet)),
            config,
            webhook,
        }
    }

    /// Counts one placement made at `(x, y)` (the placement path: a lock and an increment).
    pub fn record(&self, x: u32, y: u32) {
        self.detector.lock().record(x, y);
    }
}

/// An alarm as the audit log keeps it and the webhook sends it.
fn alarm_json(edge: &Edge, spike: &Spike, region: Option<i64>) -> Value {
    let r = &spike.rect;
    json!({
        "x": r.x,
        "y": r.y,
        "width": r.width,
        "height": r.height,
        "rate": (spike.rate * 10.0).round() / 10.0,
        "baseline": (spike.baseline * 100.0).round() / 100.0,
        "edge": edge.config.node_id,
        "regionId": region.map(|id| id.to_string()),
    })
}

impl Edge {
    /// The spike alarm, fed by the placement path.
    pub fn spike_alarm(&self) -> &SpikeAlarm {
        &self.spikes
    }

    /// Acts on a spike: the log line, the metric, the automatic slow-down if chosen, the audit
    /// row, the webhook.
    async fn raise(&self, spike: Spike) {
        let r = spike.rect;
        warn!(
            x = r.x,
            y = r.y,
            width = r.width,
            height = r.height,
            rate = spike.rate,
            baseline = spike.baseline,
            "placement spike"
        );
        metrics::counter!(SPIKE_ALARMS).increment(1);
        let region = match self.spikes.config.auto_slow {
            Some(slow) => self.slow_down(r, slow).await,
            None => None,
        };
        let details = alarm_json(self, &spike, region);
        if let Err(error) = self.audit_as(SERVER_ACTOR, "spike-alarm", &details).await {
            warn!(%error, "cannot write a spike alarm to the audit log");
        }
        self.send_webhook(details);
    }

    /// Puts `rect` in slow mode for a while, unless an automatic slow-down of it is in force
    /// already (another edge saw the same spike); its id.
    async fn slow_down(&self, rect: Rect, slow: AutoSlow) -> Option<i64> {
        let now = self.now_ms();
        if let Some(existing) = self.regions().in_force(now).iter().find(|region| {
            region.rect == rect
                && region.mode == RegionMode::Slow
                && region.created_by == SERVER_ACTOR
        }) {
            return Some(existing.id);
        }
        let new = NewRegion {
            rect,
            mode: RegionMode::Slow,
            cooldown: Some(slow.cooldown),
            until_ms: Some(now + i64::try_from(slow.duration.as_millis()).unwrap_or(i64::MAX)),
        };
        match self.add_region(SERVER_ACTOR, new).await {
            Ok(region) => {
                info!(region = region.id, "spike: area slowed down");
                Some(region.id)
            }
            Err(error) => {
                warn!(%error, "spike: cannot slow the area down");
                None
            }
        }
    }

    /// POSTs `{"kind":"spike-alarm", ...}` to the webhook, in the background, bounded in time
    /// and number.
    fn send_webhook(&self, mut details: Value) {
        let (Some(url), Some((client, in_flight))) =
            (&self.spikes.config.webhook, &self.spikes.webhook)
        else {
            return;
        };
        let Ok(permit) = Arc::clone(in_flight).try_acquire_owned() else {
            warn!("spike webhook: too many requests in flight, this alarm is not sent");
            return;
        };
        details["kind"] = json!("spike-alarm");
        details["at"] = json!(now_ms());
        let request = client.post(url).json(&details);
        tokio::spawn(async move {
            let _permit = permit;
            match request.send().await {
                Ok(answer) if answer.status().is_success() => {}
                Ok(answer) => warn!(status = %answer.status(), "spike webhook refused the alarm"),
                Err(error) => warn!(%error, "spike webhook failed"),
            }
        });
    }
}

/// Ticks the detector once a second for as long as the edge lives, and raises its spikes.
pub(crate) async fn watch(edge: Weak<Edge>) {
    // The edge installed the process's recorder before starting this task.
    metrics::describe_counter!(SPIKE_ALARMS, "Placement-spike alarms this edge raised");
    metrics::describe_gauge!(
        BUSIEST_CELL_RATE,
        "Placements per second of the busiest cell on this edge, over the last 5 s"
    );
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(edge) = edge.upgrade() else { return };
        let g = edge.config.geometry;
        let (spikes, busiest) = {
            let mut detector = edge.spikes.detector.lock();
            let spikes = detector.tick(edge.now_ms(), g.width(), g.height());
            (spikes, detector.busiest_rate())
        };
        metrics::gauge!(BUSIEST_CELL_RATE).set(busiest);
        for spike in spikes {
            let edge = Arc::clone(&edge);
            tokio::spawn(async move { edge.raise(spike).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector() -> SpikeDetector {
        let config = SpikeConfig {
            cell: 64,
            min_rate: 10,
            factor: 4,
            ..SpikeConfig::default()
        };
        SpikeDetector::new(&config, Duration::from_secs(60))
    }

    /// Feeds `per_second` placements at `(x, y)` for `seconds`, ticking each second; the spikes.
    fn run(d: &mut SpikeDetector, start_s: i64, seconds: i64, per_second: u32) -> Vec<Spike> {
        let mut spikes = Vec::new();
        for s in start_s..start_s + seconds {
            for _ in 0..per_second {
                d.record(70, 10);
            }
            spikes.extend(d.tick(s * 1000, 100, 100));
        }
        spikes
    }

    #[test]
    fn a_burst_over_both_thresholds_alarms_once_for_its_cell_clipped_to_the_canvas() {
        let mut d = detector();
        assert!(run(&mut d, 0, 60, 1).is_empty(), "steady traffic");
        let spikes = run(&mut d, 60, 10, 100);
        assert_eq!(spikes.len(), 1, "{spikes:?}");
        let spike = &spikes[0];
        assert_eq!(
            spike.rect,
            Rect {
                x: 64,
                y: 0,
                width: 36,
                height: 64
            }
        );
        assert!(spike.rate >= 10.0 && spike.baseline < 1.0, "{spike:?}");
    }

    #[test]
    fn busy_but_steady_traffic_raises_nothing() {
        let mut d = detector();
        // 30 a second is over min_rate; once the baseline has learnt it, it is not 4 times it.
        d.cells.entry((1, 0)).or_default().baseline = 30.0;
        assert!(run(&mut d, 0, 120, 30).is_empty());
        assert!((d.busiest_rate() - 30.0).abs() < 1e-9);
    }

    #[test]
    fn a_rate_under_the_floor_never_alarms_even_from_nothing() {
        let mut d = detector();
        assert!(run(&mut d, 0, 30, 9).is_empty());
    }

    #[test]
    fn an_alarmed_cell_stays_quiet_then_may_alarm_again() {
        let mut d = detector();
        assert_eq!(run(&mut d, 0, 5, 100).len(), 1);
        assert!(
            run(&mut d, 5, 50, 100).is_empty(),
            "within the quiet minute"
        );
        assert_eq!(run(&mut d, 60, 5, 100).len(), 1, "after it");
    }

    #[test]
    fn idle_cells_are_forgotten() {
        let mut d = detector();
        run(&mut d, 0, 1, 1);
        assert_eq!(d.cells(), 1);
        for s in 1..4000 {
            d.tick(s * 1000, 100, 100);
        }
        assert_eq!(d.cells(), 0);
    }
}
