//! Measures the history queries ([`place_store::history`]) on a large synthetic event log, in
//! PostgreSQL (the cluster's store) and SQLite (`place serve`'s), through the stores' own methods.
//!
//! ```text
//! cargo run --release -p place-store --example history_bench -- \
//!     [--events 20000000] [--samples 200] [--database-url URL] [--sqlite-dir DIR] \
//!     [--no-postgres] [--no-sqlite] [--migration] [--drop]
//! ```
//!
//! The log is made inside the database (`INSERT ... SELECT` over a generated series, no round
//! trip per row), through the migrated schema with every index in place, so loading also shows
//! what the indexes cost writes. Event `i` (1 to N) is placed at `t0 + i` ms (1,000 a second) on
//! a 2000x2000 canvas: one event in five on a hot 50x50 square (about 1,600 placements per hot
//! pixel), the others spread evenly; one in ten by one of 100 bots (about 20,000 placements
//! each), the others by 100,000 players; one in a thousand rolled back. `tile_seq` is `i`
//! (unique, and in each tile's order).
//!
//! The PostgreSQL data stays in the schema `place_history_bench` (about 1 GB per 5M events) so a
//! second run measures at once; `--drop` drops it at the end. SQLite's goes to `--sqlite-dir`
//! (a temporary directory by default, removed at the end). `--migration` also times migration
//! 0005 on the loaded PostgreSQL table (its indexes dropped and built again).
//!
//! Each query runs `--samples` times with random parameters; it prints p50 and p99 and the plan
//! PostgreSQL chose for each listing. It asserts nothing.

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use place_store::{Scope, Store};
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

/// The schema the PostgreSQL data lives in.
const SCHEMA: &str = "place_history_bench";
/// Events inserted per statement.
const CHUNK: i64 = 1_000_000;
/// The first event's time, epoch ms.
const T0: i64 = 1_760_000_000_000;
/// Players and bots.
const PLAYERS: i64 = 100_000;
const BOTS: i64 = 100;

struct Args {
    events: i64,
    samples: usize,
    database_url: String,
    sqlite_dir: Option<PathBuf>,
    postgres: bool,
    sqlite: bool,
    migration: bool,
    drop: bool,
}

fn args() -> Result<Args, Box<dyn Error>> {
    let mut a = Args {
        events: 20_000_000,
        samples: 200,
        database_url: std::env::var("PLACE_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned()),
        sqlite_dir: None,
        postgres: true,
        sqlite: true,
        migration: false,
        drop: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--events" => a.events = value()?.parse()?,
            "--samples" => a.samples = value()?.parse()?,
            "--database-url" => a.database_url = value()?,
            "--sqlite-dir" => a.sqlite_dir = Some(value()?.into()),
            "--no-postgres" => a.postgres = false,
            "--no-sqlite" => a.sqlite = false,
            "--migration" => a.migration = true,
            "--drop" => a.drop = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

/// The synthetic event `i` as SQL expressions over `i` (see the module documentation), the same
/// in both databases: `tx, ty` (PostgreSQL's event log has them) when `tile`, then
/// `x, y, color, user_id, placed_at, tile_seq`.
fn event_columns(tile: bool) -> String {
    // A multiplicative hash of i, spread over 32 bits.
    let h = "((i * 2654435761) % 4294967291)";
    let h2 = "((i * 40503 + 12345) % 2147483647)";
    let hot = "(i % 5 = 0)";
    let x = format!("CASE WHEN {hot} THEN 1000 + {h} % 50 ELSE {h} % 2000 END");
    let y = format!("CASE WHEN {hot} THEN 1000 + ({h} / 50) % 50 ELSE ({h} / 2000) % 2000 END");
    let user = format!(
        "CASE WHEN i % 10 = 1 THEN 1 + {h2} % {BOTS} ELSE 1 + {BOTS} + {h2} % {PLAYERS} END"
    );
    let rest = format!("{x}, {y}, {h} % 16, {user}, {T0} + i, i");
    if tile {
        format!("({x}) / 64, ({y}) / 64, {rest}")
    } else {
        rest
    }
}

/// Percentiles of a set of durations.
fn report(name: &str, mut times: Vec<Duration>) {
    times.sort_unstable();
    let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "  {name:<44} p50 {:>9.3} ms  p99 {:>9.3} ms  (n={})",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        times.len()
    );
}

/// Draws the scope and cursor of one sample.
type Draw = Box<dyn Fn(&mut rand::rngs::StdRng) -> (Scope, Option<i64>)>;

/// The listings measured: name, and a scope and cursor drawn at random.
fn cases(events: i64) -> Vec<(&'static str, Draw)> {
    vec![
        ("pixel, hot, first page", Box::new(|r| (hot_pixel(r), None))),
        (
            "pixel, hot, page at a random depth",
            Box::new(move |r| (hot_pixel(r), Some(r.random_range(1..=events)))),
        ),
        (
            "pixel, anywhere, first page",
            Box::new(|r| {
                (
                    Scope::Pixel {
                        x: r.random_range(0..2000),
                        y: r.random_range(0..2000),
                    },
                    None,
                )
            }),
        ),
        (
            "user, bot (~20k placements), first page",
            Box::new(|r| (Scope::User(1 + r.random_range(0..BOTS)), None)),
        ),
        (
            "user, bot, page at a random depth",
            Box::new(move |r| {
                (
                    Scope::User(1 + r.random_range(0..BOTS)),
                    Some(r.random_range(1..=events)),
                )
            }),
        ),
        (
            "user, player, first page",
            Box::new(|r| (Scope::User(1 + BOTS + r.random_range(0..PLAYERS)), None)),
        ),
        ("recent, first page", Box::new(|_| (Scope::Recent, None))),
        (
            "recent, page at a random depth",
            Box::new(move |r| (Scope::Recent, Some(r.random_range(1..=events)))),
        ),
    ]
}

fn hot_pixel(r: &mut rand::rngs::StdRng) -> Scope {
    Scope::Pixel {
        x: 1000 + r.random_range(0..50),
        y: 1000 + r.random_range(0..50),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let a = args()?;
    println!(
        "history_bench: {} events, {} samples per query, {} cores",
        a.events,
        a.samples,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if a.postgres {
        postgres(&a).await?;
    }
    if a.sqlite {
        sqlite(&a).await?;
    }
    Ok(())
}

async fn postgres(a: &Args) -> Result<(), Box<dyn Error>> {
    println!("PostgreSQL ({SCHEMA})");
    let store = Store::connect_postgres(&a.database_url, SCHEMA).await?;
    let admin = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(conn, format!("SET search_path TO {SCHEMA}").as_str())
                    .await?;
                Ok(())
            })
        })
        .connect(&a.database_url)
        .await?;
    let have: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pixel_events")
        .fetch_one(&admin)
        .await?;
    if have != a.events {
        sqlx::query("TRUNCATE pixel_events, reverted_events, users RESTART IDENTITY")
            .execute(&admin)
            .await?;
        let started = Instant::now();
        sqlx::query(&format!(
            "INSERT INTO users (username, is_guest, created_at) \
             SELECT 'user-' || i, true, 0 FROM generate_series(1, {}) AS s(i)",
            PLAYERS + BOTS
        ))
        .execute(&admin)
        .await?;
        let mut low = 1;
        while low <= a.events {
            let high = (low + CHUNK - 1).min(a.events);
            sqlx::query(&format!(
                "INSERT INTO pixel_events (tx, ty, x, y, color, user_id, placed_at, tile_seq) \
                 SELECT {} FROM generate_series({low}::bigint, {high}::bigint) AS s(i)",
                event_columns(true)
            ))
            .execute(&admin)
            .await?;
            println!("  loaded {high} events in {:.0?}", started.elapsed());
            low = high + 1;
        }
        sqlx::query("INSERT INTO reverted_events (event_id, action_id) SELECT id, 1 FROM pixel_events WHERE id % 1000 = 7")
            .execute(&admin)
            .await?;
        let load = started.elapsed();
        sqlx::query("VACUUM (ANALYZE) pixel_events")
            .execute(&admin)
            .await?;
        sqlx::query("VACUUM (ANALYZE) users")
            .execute(&admin)
            .await?;
        sqlx::query("VACUUM (ANALYZE) reverted_events")
            .execute(&admin)
            .await?;
        println!(
            "  load: {:.1} s ({:.0} events/s with every index), then VACUUM ANALYZE: {:.1} s in all",
            load.as_secs_f64(),
            a.events as f64 / load.as_secs_f64(),
            started.elapsed().as_secs_f64()
        );
    } else {
        println!("  reusing the {have} events already loaded");
    }
    let size: String =
        sqlx::query_scalar("SELECT pg_size_pretty(pg_total_relation_size('pixel_events'))")
            .fetch_one(&admin)
            .await?;
    println!("  pixel_events with its indexes: {size}");

    listings(a.events, a.samples, |scope, before, limit| {
        store.history(scope, before, limit)
    })
    .await?;
    heatmaps(a.samples.min(20), T0 + a.events, |since| {
        store.heatmap(since, 8, 1_000_000)
    })
    .await?;

    println!("  plans (EXPLAIN ANALYZE, a page deep in the log):");
    for (scope, before) in [
        (Scope::Pixel { x: 1010, y: 1010 }, Some(a.events / 2)),
        (Scope::User(1), Some(a.events / 2)),
        (Scope::Recent, Some(a.events / 2)),
    ] {
        println!("  {scope:?}, before {before:?}:");
        let pg = store.postgres().ok_or("a PostgreSQL store")?;
        for line in pg.explain_history(scope, before, 50).await? {
            println!("    {line}");
        }
    }

    if a.migration {
        sqlx::query("DROP INDEX pixel_events_pixel_seq, pixel_events_user_id")
            .execute(&admin)
            .await?;
        sqlx::query("CREATE INDEX pixel_events_pixel ON pixel_events (x, y)")
            .execute(&admin)
            .await?;
        let t = Instant::now();
        sqlx::raw_sql(include_str!("../migrations/postgres/0005_history.sql"))
            .execute(&admin)
            .await?;
        println!(
            "  migration 0005 on {} events: {:.1} s",
            a.events,
            t.elapsed().as_secs_f64()
        );
    }
    store.close().await;
    if a.drop {
        sqlx::query(&format!("DROP SCHEMA {SCHEMA} CASCADE"))
            .execute(&admin)
            .await?;
        println!("  dropped {SCHEMA}");
    }
    Ok(())
}

/// Times the heatmap of the last 5 and 60 minutes of the log, which ends at `end` (epoch ms).
async fn heatmaps<F, Fut>(samples: usize, end: i64, heatmap: F) -> Result<(), Box<dyn Error>>
where
    F: Fn(i64) -> Fut,
    Fut: std::future::Future<Output = Result<place_store::HeatmapCounts, place_store::StoreError>>,
{
    for minutes in [5, 60] {
        let since = end - minutes * 60_000;
        let mut times = Vec::with_capacity(samples);
        let mut counted = (0, false);
        for _ in 0..samples {
            let t = Instant::now();
            let counts = heatmap(since).await?;
            times.push(t.elapsed());
            counted = (counts.total, counts.truncated);
        }
        let truncated = if counted.1 { ", truncated" } else { "" };
        report(
            &format!(
                "heatmap, last {minutes} min ({} counted{truncated})",
                counted.0
            ),
            times,
        );
    }
    Ok(())
}

/// Times each listing at random parameters, then walks two listings page by page.
async fn listings<F, Fut>(events: i64, samples: usize, history: F) -> Result<(), Box<dyn Error>>
where
    F: Fn(Scope, Option<i64>, i64) -> Fut,
    Fut: std::future::Future<Output = Result<place_store::HistoryPage, place_store::StoreError>>,
{
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (name, case) in cases(events) {
        let mut times = Vec::with_capacity(samples);
        for _ in 0..samples {
            let (scope, before) = case(&mut rng);
            let t = Instant::now();
            let page = history(scope, before, 50).await?;
            times.push(t.elapsed());
            std::hint::black_box(page);
        }
        report(name, times);
    }
    for (scope, limit, name) in [
        (
            Scope::Pixel { x: 1010, y: 1010 },
            50,
            "pixel, hot: every page of 50 in turn",
        ),
        (Scope::User(1), 500, "user, bot: every page of 500 in turn"),
    ] {
        let mut times = Vec::new();
        let mut before = None;
        let mut rows = 0;
        loop {
            let t = Instant::now();
            let page = history(scope, before, limit).await?;
            times.push(t.elapsed());
            rows += page.entries.len();
            match page.next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        report(&format!("{name} ({rows} rows)"), times);
    }
    Ok(())
}

async fn sqlite(a: &Args) -> Result<(), Box<dyn Error>> {
    let temp = tempfile::tempdir()?;
    let dir = a
        .sqlite_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    println!("SQLite ({})", dir.display());
    let store = Store::open_sqlite(&dir).await?;
    let path = dir.join(place_store::embedded::DATABASE_FILE);
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .pragma("cache_size", "-2000000");
    let loader = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    let have: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pixel_events")
        .fetch_one(&loader)
        .await?;
    if have != a.events {
        sqlx::query("DELETE FROM pixel_events")
            .execute(&loader)
            .await?;
        sqlx::query("DELETE FROM reverted_events")
            .execute(&loader)
            .await?;
        sqlx::query("DELETE FROM users").execute(&loader).await?;
        let started = Instant::now();
        sqlx::query(&format!(
            "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {}) \
             INSERT INTO users (id, username, is_guest, created_at) SELECT i, 'user-' || i, 1, 0 FROM s",
            PLAYERS + BOTS
        ))
        .execute(&loader)
        .await?;
        let mut low = 1;
        while low <= a.events {
            let high = (low + CHUNK - 1).min(a.events);
            sqlx::query(&format!(
                "WITH RECURSIVE s(i) AS (SELECT {low} UNION ALL SELECT i + 1 FROM s WHERE i < {high}) \
                 INSERT INTO pixel_events (id, x, y, color, user_id, placed_at, tile_seq) \
                 SELECT i, {} FROM s",
                event_columns(false)
            ))
            .execute(&loader)
            .await?;
            println!("  loaded {high} events in {:.0?}", started.elapsed());
            low = high + 1;
        }
        sqlx::query("INSERT INTO reverted_events (event_id, action_id) SELECT id, 1 FROM pixel_events WHERE id % 1000 = 7")
            .execute(&loader)
            .await?;
        sqlx::query("ANALYZE").execute(&loader).await?;
        let load = started.elapsed();
        println!(
            "  load: {:.1} s ({:.0} events/s with every index, ANALYZE included)",
            load.as_secs_f64(),
            a.events as f64 / load.as_secs_f64()
        );
    } else {
        println!("  reusing the {have} events already there");
    }
    loader.close().await;
    let bytes = std::fs::metadata(&path)?.len();
    println!("  database file: {:.1} GB", bytes as f64 / 1e9);
    listings(a.events, a.samples, |scope, before, limit| {
        store.history(scope, before, limit)
    })
    .await?;
    heatmaps(a.samples.min(20), T0 + a.events, |since| {
        store.heatmap(since, 8, 1_000_000)
    })
    .await?;
    store.close().await;
    Ok(())
}
