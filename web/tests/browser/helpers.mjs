// Shared helpers of the browser tests and the benchmark: a real `place serve`
// on a free port with a fresh data dir, headless Chromium, and a JSON-protocol
// client speaking for "another person".

import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import WebSocket from "ws";

const webDir = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** Where screenshots go: $SCREENSHOT_DIR or web/test-results/. */
export const screenshotDir = process.env.SCREENSHOT_DIR ?? join(webDir, "test-results");

/**
 * Starts `place serve` and resolves once it prints `listening on http://...`.
 * Options become flags; the data dir is fresh and removed on stop().
 * `admins` ({name, password}) are made with `place admin create-user --admin` first.
 */
export async function startServer({ cooldownSecs = 0, extraArgs = [], admins = [], guestRatePerMinute = 0 } = {}) {
  const bin = placeBin();
  const dataDir = mkdtempSync(join(tmpdir(), "place-web-test-"));
  for (const { name, password } of admins) createAdmin(bin, dataDir, name, password);
  const args = [
    "serve",
    "--listen", "127.0.0.1:0",
    "--data-dir", dataDir,
    "--cooldown-secs", String(cooldownSecs),
    "--guest-rate-per-minute", String(guestRatePerMinute),
    ...extraArgs,
  ];
  const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"], env: { RUST_LOG: "warn", ...process.env } });
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
    if (stderr.length > 100_000) stderr = stderr.slice(-50_000);
  });
  const url = await new Promise((res, rej) => {
    let out = "";
    const timer = setTimeout(() => rej(new Error(`place serve did not start in 30 s:\n${stderr}`)), 30_000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        res(m[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      rej(new Error(`place serve exited with ${code} (${bin} ${args.join(" ")}):\n${stderr}`));
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      rej(new Error(`cannot run ${bin}: ${e.message}; build it with cargo build -p place or set PLACE_BIN`));
    });
  });
  return {
    url,
    stderr: () => stderr,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function placeBin() {
  return process.env.PLACE_BIN ?? resolve(webDir, "../target/debug/place");
}

/** `place admin create-user NAME --admin --data-dir DIR`, the password on stdin. */
function createAdmin(bin, dataDir, name, password) {
  const r = spawnSync(bin, ["admin", "create-user", name, "--admin", "--data-dir", dataDir], { input: `${password}\n`, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`place admin create-user ${name}: exit ${r.status}:\n${r.stderr}${r.error ?? ""}`);
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    headless: true,
  });
}

/** Opens the client at a view and waits until it is live with every visible tile loaded. */
export async function openPage(context, baseUrl, { x, y, zoom }) {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(`${baseUrl}/#x=${x}&y=${y}&zoom=${zoom}`);
  await waitReady(page);
  return page;
}

/** Live, in tile mode, and every visible tile painted. */
export async function waitReady(page, timeout = 10_000) {
  await page.waitForFunction(
    () => window.__place?.status === "live" && window.__place.visiblePending === 0 && window.__place.subscribed.length > 0,
    null,
    { timeout, polling: 50 },
  );
  // One more frame so the snapshots are on the canvas.
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

/** The RGB the page's canvas shows at the centre of canvas pixel (x, y). */
export async function canvasRgb(page, x, y) {
  return page.evaluate(
    ([x, y]) => {
      const s = window.__place.screenOf(x, y);
      const board = document.getElementById("board");
      const dpr = board.width / board.clientWidth;
      const d = board.getContext("2d").getImageData(Math.floor(s.x * dpr), Math.floor(s.y * dpr), 1, 1).data;
      return [d[0], d[1], d[2]];
    },
    [x, y],
  );
}

/** "#rrggbb" to [r, g, b]. */
export function hexRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** Waits until the canvas shows `rgb` at pixel (x, y). */
export async function waitForCanvasRgb(page, x, y, rgb, timeout = 5000) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await canvasRgb(page, x, y);
    if (last.every((v, i) => v === rgb[i])) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`pixel (${x},${y}) shows ${last}, expected ${rgb}`);
}

/** A solved proof-of-work challenge for a new guest (as the page's src/pow.ts makes one). */
export async function guestProof(baseUrl) {
  const res = await fetch(`${baseUrl}/api/v1/auth/challenge`);
  if (!res.ok) throw new Error(`GET /api/v1/auth/challenge: ${res.status}`);
  const { challenge, difficulty } = await res.json();
  const { createHash } = await import("node:crypto");
  for (let nonce = 0; ; nonce++) {
    const hash = createHash("sha256").update(`${challenge}:${nonce}`).digest();
    let bits = 0;
    for (const byte of hash) {
      if (byte === 0) {
        bits += 8;
        continue;
      }
      bits += Math.clz32(byte) - 24;
      break;
    }
    if (bits >= difficulty) return { challenge, nonce: String(nonce) };
  }
}

/** A guest session for a script: the `place_session=...` cookie. */
export async function guestCookie(baseUrl) {
  const res = await fetch(`${baseUrl}/api/v1/auth/guest`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(await guestProof(baseUrl)),
  });
  if (!res.ok) throw new Error(`POST /api/v1/auth/guest: ${res.status} ${await res.text()}`);
  const setCookie = res.headers.get("set-cookie") ?? "";
  const m = /(?:__Host-)?place_session=[0-9a-f]+/.exec(setCookie);
  if (!m) throw new Error(`no place_session cookie in ${setCookie}`);
  return m[0];
}

/** A JSON-protocol client (`/ws?format=json`) with its own guest session. */
export async function jsonClient(baseUrl) {
  const cookie = await guestCookie(baseUrl);
  const ws = new WebSocket(`${baseUrl.replace(/^http/, "ws")}/ws?format=json`, { headers: { Cookie: cookie } });
  const inbox = [];
  const waiters = [];
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data));
    inbox.push(msg);
    for (const w of [...waiters]) {
      if (w.pred(msg)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.res(msg);
      }
    }
  });
  const next = (pred, timeout = 5000) => {
    const found = inbox.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((res, rej) => {
      const w = { pred, res };
      waiters.push(w);
      setTimeout(() => rej(new Error("jsonClient: timed out waiting for a message")), timeout).unref();
    });
  };
  await new Promise((res, rej) => {
    ws.once("open", res);
    ws.once("error", rej);
  });
  const welcome = await next((m) => m.type === "welcome");
  let requestSeq = 0;
  return {
    welcome,
    cookie,
    inbox,
    next,
    /** Places a pixel and resolves with the answer (success or error). */
    async place(x, y, color) {
      const requestId = `r-${++requestSeq}`;
      ws.send(JSON.stringify({ type: "place", x, y, color, requestId }));
      return next((m) => (m.type === "success" || m.type === "error") && m.requestId === requestId);
    },
    send(obj) {
      ws.send(JSON.stringify(obj));
    },
    close() {
      ws.close();
    },
  };
}

/** The whole canvas from the server: width*height palette indices. */
export async function serverCanvas(baseUrl) {
  const res = await fetch(`${baseUrl}/api/v1/canvas`);
  if (!res.ok) throw new Error(`GET /api/v1/canvas: ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

export async function screenshot(page, name) {
  mkdirSync(screenshotDir, { recursive: true });
  const path = join(screenshotDir, name);
  await page.screenshot({ path });
  return path;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Places many pixels fast from `clients` JSON clients in parallel (each stays
 * under the server's 50 frames/s); needs a server with --cooldown-secs 0.
 */
export async function paintMany(baseUrl, pixels, clients = 8) {
  const bots = await Promise.all(Array.from({ length: clients }, () => jsonClient(baseUrl)));
  await Promise.all(
    bots.map(async (bot, k) => {
      for (let i = k; i < pixels.length; i += clients) {
        const { x, y, color } = pixels[i];
        const answer = await bot.place(x, y, color);
        if (answer.type !== "success") throw new Error(`placing (${x},${y}): ${JSON.stringify(answer)}`);
        await sleep(22);
      }
    }),
  );
  for (const bot of bots) bot.close();
}

/** Signs `admin` ({name, password}) in through the account dialog and opens the admin panel. */
export async function openAdminPanel(page, admin) {
  await page.click("#account-button");
  await page.waitForSelector("#account-dialog[open]");
  await page.fill("#account-username", admin.name);
  await page.fill("#account-password", admin.password);
  await page.click("#account-login");
  await page.waitForSelector("#admin-button:not([hidden])");
  await page.click("#admin-button");
  await page.waitForSelector("#admin-panel:not([hidden])");
}
