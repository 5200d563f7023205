// An edge killed with kill -9 under a page: the page reconnects through nginx to
// the other edge by itself, resynchronises its tiles by seq, and shows no stale
// pixel, while someone else kept painting through the other edge meanwhile.
//
// Runs the real dev cluster (scripts/dev-cluster: 3 shards, 2 edges, nginx, on
// the local Redis, PostgreSQL and RabbitMQ) under a cluster name of its own,
// removed afterwards.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { jsonClient, launchBrowser, openPage, serverCanvas, sleep } from "./helpers.mjs";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

describe("an edge killed under a page", () => {
  const dir = mkdtempSync(join(tmpdir(), "place-edgekill-"));
  const name = `web_edgekill_${process.pid}`;
  const env = {
    ...process.env,
    PLACE_BIN: process.env.PLACE_BIN ?? join(repo, "target/debug/place"),
    DEV_CLUSTER_DIR: dir,
    DEV_CLUSTER_NAME: name,
    // Below 32768 (Linux's ephemeral ports), clear of the Rust dev-cluster tests' 20000-31519.
    DEV_CLUSTER_PORT: String(31_600 + (process.pid % 50) * 16),
    PLACE_COOLDOWN_SECS: "0",
    PLACE_GUEST_RATE_PER_MINUTE: "0",
    PLACE_WIDTH: "256",
    PLACE_HEIGHT: "256",
    RUST_LOG: "warn",
  };
  const devCluster = (...args) => spawnSync("bash", [join(repo, "scripts/dev-cluster"), ...args], { env, encoding: "utf8" });
  let urls;
  let browser;

  before(async () => {
    const up = devCluster("up");
    assert.equal(up.status, 0, `dev-cluster up: ${up.stderr}`);
    urls = up.stdout.trim().split("\n");
    assert.equal(urls.length, 3, up.stdout);
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    devCluster("down");
    spawnSync("psql", ["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", `DROP SCHEMA IF EXISTS ${name} CASCADE`]);
    spawnSync("sh", ["-c", `redis-cli -h 127.0.0.1 --scan --pattern 'place:${name}:*' | xargs -r redis-cli -h 127.0.0.1 del`]);
    rmSync(dir, { recursive: true, force: true });
  });

  /** How many WebSockets edge `i` (0 or 1) holds, from its /metrics. */
  async function socketsOn(i) {
    const text = await (await fetch(`${urls[i]}/metrics`)).text();
    const m = /^rplace_active_connections (\d+)/m.exec(text);
    return m ? Number(m[1]) : 0;
  }

  it("reconnects through nginx to the other edge and resyncs with no stale pixel", async () => {
    const lb = urls[2];
    const page = await openPage(await browser.newContext({ viewport: { width: 800, height: 600 } }), lb, { x: 128, y: 128, zoom: 3 });
    const info = await page.evaluate(() => window.__place.info);
    // The page is the only WebSocket so far: the edge that holds it is the one to kill.
    const counts = [await socketsOn(0), await socketsOn(1)];
    const victim = counts[0] > 0 ? 0 : 1;
    assert.equal(counts[victim], 1, `one socket, on one edge: ${counts}`);
    const survivor = 1 - victim;
    const bot = await jsonClient(urls[survivor]);
    const spot = (i) => ({ x: 40 + ((i * 37) % 180), y: 40 + ((i * 53) % 180), color: 1 + (i % 15) });
    let i = 0;
    const paint = async (n) => {
      for (const end = i + n; i < end; i++) {
        const p = spot(i);
        const answer = await bot.place(p.x, p.y, p.color);
        assert.equal(answer.type, "success", JSON.stringify(answer));
      }
    };
    await paint(15);
    const last = spot(i - 1);
    await page.waitForFunction(([x, y, c]) => window.__place.colorAt(x, y) === c, [last.x, last.y, last.color], { timeout: 5000 });

    // kill -9 of the page's edge; the painting goes on through the other one.
    const pids = readFileSync(join(dir, "pids"), "utf8");
    const pid = pids
      .split("\n")
      .map((l) => l.split(" "))
      .find(([, node]) => node === `edge-${victim + 1}`)[0];
    const killedAt = Date.now();
    process.kill(Number(pid), "SIGKILL");
    await paint(30);
    // A second welcome: the page connected again (through nginx, so to the other edge).
    await page.waitForFunction(() => window.__place.received.welcome >= 2 && window.__place.status === "live", null, {
      timeout: 15_000,
      polling: 50,
    });
    const back = Date.now() - killedAt;
    assert.ok((await socketsOn(survivor)) >= 2, "the page is now on the other edge");
    await paint(10);

    // Every pixel of every tile the page holds matches the server (whose canvas answer may be a
    // second old: compare again for a few seconds).
    let shown;
    let stale;
    for (let attempt = 0; attempt < 6; attempt++) {
      await sleep(1000);
      const truth = await serverCanvas(urls[survivor]);
      shown = await page.evaluate(() =>
        window.__place.subscribed.map(([tx, ty]) => {
          const colors = [];
          for (let y = ty * 64; y < ty * 64 + 64; y++) for (let x = tx * 64; x < tx * 64 + 64; x++) colors.push(window.__place.colorAt(x, y));
          return { tx, ty, colors };
        }),
      );
      stale = [];
      for (const { tx, ty, colors } of shown) {
        colors.forEach((c, k) => {
          const x = tx * 64 + (k % 64);
          const y = ty * 64 + Math.floor(k / 64);
          if (x < info.width && y < info.height && c !== truth[y * info.width + x]) stale.push([x, y, c, truth[y * info.width + x]]);
        });
      }
      if (stale.length === 0) break;
    }
    assert.ok(shown.length >= 9, `${shown.length} tiles held`);
    assert.deepEqual(stale.slice(0, 10), [], "no stale pixel");
    console.log(`edge-${victim + 1} killed: the page was live again through edge-${survivor + 1} after ${back} ms, ${shown.length} tiles equal to the server`);
    bot.close();
    await page.context().close();
  });
});
