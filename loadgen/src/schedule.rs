//! Who places and when: the plan behind `--place-rate`, or every player on its cooldown.

use std::time::Duration;

/// A session never places faster than this, well below the server's 50 frames/s per connection
/// (only reached on servers without a cooldown, as in the benchmarks).
pub const MAX_PLACEMENTS_PER_SESSION_PER_SEC: f64 = 20.0;
/// Added to the server's cooldown between two placements of one session, so clock jitter never
/// makes a scheduled placement arrive early.
pub const COOLDOWN_MARGIN: Duration = Duration::from_millis(500);
/// Without a server cooldown, a player placing "whenever it may" places once a second.
pub const NO_COOLDOWN_INTERVAL: Duration = Duration::from_secs(1);

/// How the run places pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlacePlan {
    /// Nobody places (`--place-rate 0`): idle players.
    Idle,
    /// Every player places whenever its cooldown allows.
    Cooldown {
        /// The server's cooldown.
        cooldown: Duration,
    },
    /// `placers` sessions each place every `interval`: `rate` placements per second in all.
    Rate {
        /// Placements per second over the whole run.
        rate: f64,
        /// How many sessions place.
        placers: usize,
        /// Time between two placements of one placing session.
        interval: Duration,
    },
}

impl PlacePlan {
    /// The plan for `--place-rate` (`None`: every player on its cooldown).
    pub fn new(rate: Option<f64>, cooldown: Duration) -> Self {
        match rate {
            None => Self::Cooldown { cooldown },
            Some(rate) if rate <= 0.0 => Self::Idle,
            Some(rate) => {
                let min_interval = if cooldown.is_zero() {
                    Duration::from_secs_f64(1.0 / MAX_PLACEMENTS_PER_SESSION_PER_SEC)
                } else {
                    (cooldown + COOLDOWN_MARGIN).max(Duration::from_secs_f64(
                        1.0 / MAX_PLACEMENTS_PER_SESSION_PER_SEC,
                    ))
                };
                let placers = (rate * min_interval.as_secs_f64()).ceil().max(1.0) as usize;
                let interval = Duration::from_secs_f64(placers as f64 / rate);
                Self::Rate {
                    rate,
                    placers,
                    interval,
                }
            }
        }
    }

    /// Whether player `index` (of `clients`) places; placers are spread evenly over the
    /// population, so they arrive evenly during the ramp.
    pub fn is_placer(&self, index: usize, clients: usize) -> bool {
        match *self {
            Self::Idle => false,
            Self::Cooldown { .. } => true,
            Self::Rate { placers, .. } => {
                let (i, n, p) = (index as u128, clients as u128, placers as u128);
                (i + 1) * p / n > i * p / n
            }
        }
    }

    /// Player `index`'s place among the players of its kind, placers or the others. Giving
    /// each kind its servers round-robin by it spreads both evenly over several `--url`s,
    /// whatever the stride between placers (by the index alone, one placer in four over two
    /// servers would all land on the second).
    pub fn rank_in_kind(&self, index: usize, clients: usize) -> usize {
        match *self {
            Self::Idle | Self::Cooldown { .. } => index,
            Self::Rate { placers, .. } => {
                // The placers among players 0..index: the sum of `is_placer` telescopes.
                let before = (index as u128 * placers as u128 / clients as u128) as usize;
                if self.is_placer(index, clients) {
                    before
                } else {
                    index - before
                }
            }
        }
    }

    /// How many of `clients` players place.
    pub fn placers(&self, clients: usize) -> usize {
        match *self {
            Self::Idle => 0,
            Self::Cooldown { .. } => clients,
            Self::Rate { placers, .. } => placers.min(clients),
        }
    }

    /// The time between two placements of one placer when nothing delays it.
    pub fn interval(&self) -> Option<Duration> {
        match *self {
            Self::Idle => None,
            Self::Cooldown { cooldown } if cooldown.is_zero() => Some(NO_COOLDOWN_INTERVAL),
            Self::Cooldown { cooldown } => Some(cooldown),
            Self::Rate { interval, .. } => Some(interval),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_plans_respect_the_cooldown_and_the_session_limit() {
        let plan = PlacePlan::new(Some(1000.0), Duration::from_secs(5));
        let PlacePlan::Rate {
            placers, interval, ..
        } = plan
        else {
            panic!("rate plan expected, got {plan:?}");
        };
        assert_eq!(placers, 5500, "5.5 s between placements of one session");
        assert!((interval.as_secs_f64() - 5.5).abs() < 1e-9);

        let plan = PlacePlan::new(Some(1000.0), Duration::ZERO);
        assert_eq!(plan.placers(50_000), 50, "20 placements/s per session");
        assert_eq!(plan.interval(), Some(Duration::from_millis(50)));

        let plan = PlacePlan::new(Some(0.5), Duration::ZERO);
        assert_eq!(plan.placers(10), 1);
        assert_eq!(plan.interval(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn placers_and_watchers_are_each_spread_evenly_over_the_servers() {
        for (rate, clients, servers) in [
            (2000.0, 400, 2),
            (1000.0, 1000, 2),
            (10000.0, 2000, 3),
            (70.0, 10, 2),
        ] {
            let plan = PlacePlan::new(Some(rate), Duration::ZERO);
            let mut placers = vec![0; servers];
            let mut watchers = vec![0; servers];
            for i in 0..clients {
                let server = plan.rank_in_kind(i, clients) % servers;
                if plan.is_placer(i, clients) {
                    placers[server] += 1;
                } else {
                    watchers[server] += 1;
                }
            }
            for counts in [&placers, &watchers] {
                let (lo, hi) = (
                    counts.iter().min().expect("servers"),
                    counts.iter().max().expect("servers"),
                );
                assert!(
                    hi - lo <= 1,
                    "rate {rate}, {clients} clients: {placers:?} placers, {watchers:?} others"
                );
            }
            assert_eq!(placers.iter().sum::<usize>(), plan.placers(clients));
        }
        // Every player places: the index is the rank.
        let all = PlacePlan::new(None, Duration::ZERO);
        assert_eq!(all.rank_in_kind(7, 10), 7);
    }

    #[test]
    fn placers_are_spread_evenly_over_the_population() {
        let plan = PlacePlan::new(Some(100.0), Duration::ZERO);
        let chosen: Vec<usize> = (0..1000).filter(|&i| plan.is_placer(i, 1000)).collect();
        assert_eq!(chosen.len(), 5);
        assert!(chosen.windows(2).all(|w| w[1] - w[0] == 200), "{chosen:?}");
        assert!(PlacePlan::Cooldown {
            cooldown: Duration::ZERO
        }
        .is_placer(7, 10));
        assert!(!PlacePlan::Idle.is_placer(7, 10));
        assert_eq!(PlacePlan::new(Some(0.0), Duration::ZERO), PlacePlan::Idle);
        assert_eq!(
            PlacePlan::new(None, Duration::ZERO).interval(),
            Some(NO_COOLDOWN_INTERVAL)
        );
    }
}
