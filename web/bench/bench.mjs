// Browser benchmark of the client (run by hand, not a test):
//   cd web && npm run bench            # uses ../target/debug/place, or PLACE_BIN=...
//   node bench/bench.mjs --rate 400 --seconds 6 --zoom 2
//
// Starts a real server, a load of JSON-protocol clients placing `rate` pixels
// a second into the viewed area, and headless Chromium at 1920x1080. Measures:
// - first paint: navigation start to the first frame with every visible tile drawn;
// - panning: frames per second and per-frame render cost while the view pans
//   continuously across the canvas with the load landing in view.

import { parseArgs } from "node:util";
import { jsonClient, launchBrowser, sleep, startServer } from "../tests/browser/helpers.mjs";

const { values: opt } = parseArgs({
  options: {
    rate: { type: "string", default: "400" },
    seconds: { type: "string", default: "6" },
    zoom: { type: "string", default: "2" },
    runs: { type: "string", default: "3" },
  },
});
const rate = Number(opt.rate);
const seconds = Number(opt.seconds);
const zoom = Number(opt.zoom);

const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : NaN;
};
const round = (x) => Math.round(x * 10) / 10;

/** `rate` placements a second from several clients (each under the server's 50 frames/s). */
async function startLoad(url, rate, area) {
  const perClient = 30;
  const clients = await Promise.all(Array.from({ length: Math.max(1, Math.ceil(rate / perClient)) }, () => jsonClient(url)));
  let sent = 0;
  let stop = false;
  const loops = clients.map(async (c, k) => {
    const every = 1000 / (rate / clients.length);
    let next = performance.now();
    while (!stop) {
      const x = area.x0 + Math.floor(Math.random() * area.w);
      const y = area.y0 + Math.floor(Math.random() * area.h);
      c.send({ type: "place", x, y, color: Math.floor(Math.random() * 16), requestId: `b${k}-${sent}` });
      c.inbox.length = 0; // answers and tiles are not needed
      sent++;
      next += every;
      await sleep(Math.max(0, next - performance.now()));
    }
  });
  return {
    sent: () => sent,
    async stop() {
      stop = true;
      await Promise.all(loops);
      for (const c of clients) c.close();
    },
  };
}

async function firstPaint(browser, url, view) {
  const context = await browser.newContext({ viewport: { width: 1920, height: 1080 } });
  const page = await context.newPage();
  await page.addInitScript(() => {
    const poll = () => {
      const p = window.__place;
      if (p && p.status === "live" && p.subscribed.length > 0 && p.visiblePending === 0) {
        // The frame that draws the last snapshot runs before this callback's next one.
        requestAnimationFrame(() => (window.__firstPaint = performance.now()));
        return;
      }
      requestAnimationFrame(poll);
    };
    requestAnimationFrame(poll);
  });
  await page.goto(`${url}/#x=${view.x}&y=${view.y}&zoom=${view.zoom}`);
  await page.waitForFunction(() => window.__firstPaint !== undefined, null, { timeout: 30_000 });
  const result = await page.evaluate(() => {
    const mark = (name) => Math.round(performance.getEntriesByName(name)[0]?.startTime ?? NaN);
    return {
      ms: window.__firstPaint,
      tiles: window.__place.subscribed.length,
      // Where the time went, ms from navigation start.
      steps: {
        domContentLoaded: Math.round(performance.getEntriesByType("navigation")[0]?.domContentLoadedEventEnd),
        wsConnect: mark("place:connect"),
        wsOpen: mark("place:open"),
        welcome: mark("place:welcome"),
        allTilesDrawn: Math.round(window.__firstPaint),
      },
    };
  });
  await context.close();
  return result;
}

async function pan(browser, url, view, seconds, pxPerFrame) {
  const context = await browser.newContext({ viewport: { width: 1920, height: 1080 } });
  const page = await context.newPage();
  await page.goto(`${url}/#x=${view.x}&y=${view.y}&zoom=${view.zoom}`);
  await page.waitForFunction(() => window.__place?.status === "live" && window.__place.visiblePending === 0, null, { timeout: 30_000 });
  const r = await page.evaluate(
    ([seconds, pxPerFrame]) =>
      new Promise((resolve) => {
        const render = [];
        window.__place.onFrame((ms) => render.push(ms));
        const gaps = [];
        const start = performance.now();
        let last = start;
        let { cx, cy, zoom } = window.__place.view;
        let dir = 1;
        const step = (t) => {
          gaps.push(t - last);
          last = t;
          // Pan horizontally, bouncing at the canvas edges, like a steady drag.
          cx += (dir * pxPerFrame) / zoom;
          if (cx > window.__place.info.width - 100 || cx < 100) dir = -dir;
          window.__place.setView(cx - 0.5, cy - 0.5, zoom);
          if (t - start < seconds * 1000) requestAnimationFrame(step);
          else resolve({ frames: gaps.length, seconds: (t - start) / 1000, gaps, render, subscribed: window.__place.subscribed.length, mode: window.__place.mode });
        };
        requestAnimationFrame(step);
      }),
    [seconds, pxPerFrame],
  );
  await context.close();
  return {
    mode: r.mode,
    fps: round(r.frames / r.seconds),
    frameGapP50: round(quantile(r.gaps, 0.5)),
    frameGapP99: round(quantile(r.gaps, 0.99)),
    framesOver20ms: r.gaps.filter((g) => g > 20).length,
    renderMsP50: round(quantile(r.render, 0.5)),
    renderMsP95: round(quantile(r.render, 0.95)),
    renderMsMax: round(Math.max(...r.render)),
    subscribedTiles: r.subscribed,
  };
}

const server = await startServer({ cooldownSecs: 0 });
const browser = await launchBrowser();
try {
  const center = { x: 1000, y: 1000 };
  const w = Math.ceil(1920 / zoom);
  const h = Math.ceil(1080 / zoom);
  const area = { x0: Math.max(0, center.x - w / 2), y0: Math.max(0, center.y - h / 2), w: Math.min(2000, w), h: Math.min(2000, h) };

  // Some paint on the canvas first, then first paint with no other traffic...
  let load = await startLoad(server.url, rate, area);
  await sleep(3000);
  await load.stop();
  const idlePaints = [];
  for (let i = 0; i < Number(opt.runs); i++) idlePaints.push(await firstPaint(browser, server.url, { ...center, zoom }));

  // ...and under load.
  load = await startLoad(server.url, rate, area);
  await sleep(1000);
  const paints = [];
  for (let i = 0; i < Number(opt.runs); i++) paints.push(await firstPaint(browser, server.url, { ...center, zoom }));
  const t0 = performance.now();
  const sent0 = load.sent();
  const panTiles = await pan(browser, server.url, { ...center, zoom }, seconds, 8);
  const panZoomed = await pan(browser, server.url, { ...center, zoom: 16 }, seconds, 8);
  const panOverview = await pan(browser, server.url, { ...center, zoom: 0.5 }, seconds, 8);
  const achievedRate = Math.round(((load.sent() - sent0) * 1000) / (performance.now() - t0));
  await load.stop();

  console.log(
    JSON.stringify(
      {
        chromium: browser.version(),
        viewport: "1920x1080",
        load: { targetPerS: rate, sentPerS: achievedRate },
        firstPaintTiles: paints[0].tiles,
        firstPaintMsIdle: idlePaints.map((p) => round(p.ms)),
        firstPaintMsUnderLoad: paints.map((p) => round(p.ms)),
        firstPaintSteps: { idle: idlePaints.map((p) => p.steps), underLoad: paints.map((p) => p.steps) },
        panAtZoom: { [zoom]: panTiles, 16: panZoomed, "0.5 (overview)": panOverview },
      },
      null,
      2,
    ),
  );
} finally {
  await browser.close();
  await server.stop();
}
