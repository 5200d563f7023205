// A placement refused for now: the page keeps the pixel, pending, and sends it
// again by itself after the server's retryAfter (what it sees while a dead
// shard's tiles move to their new owners); one refused without retryAfter (it
// may have been placed) is rolled back at once and never sent again.
//
// The refusals are injected between the page and a real `place serve`
// (Playwright's WebSocket routing): a failover cannot be made on demand in a
// single server, and the page's behaviour is what is tested here; the cluster
// tests make the refusals for real.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { launchBrowser, openPage, serverCanvas, sleep, startServer } from "./helpers.mjs";

/** Opcode of a binary `place` frame (docs/PROTOCOL.md). */
const PLACE = 0x03;

/** A binary UNAVAILABLE error answering `requestId`, with `retryAfter` ms when given. */
function unavailable(requestId, retryAfter) {
  const text = Buffer.from("shard unreachable");
  const flags = 1 | (retryAfter !== undefined ? 4 : 0);
  const b = Buffer.alloc(13 + text.length + (retryAfter !== undefined ? 4 : 0));
  b.writeUInt8(0x85, 0);
  b.writeUInt8(8, 1); // UNAVAILABLE
  b.writeUInt8(flags, 2);
  b.writeUInt32LE(requestId, 3);
  b.writeUInt32LE(0, 7);
  b.writeUInt16LE(text.length, 11);
  text.copy(b, 13);
  if (retryAfter !== undefined) b.writeUInt32LE(retryAfter, 13 + text.length);
  return b;
}

describe("placements refused for now", () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer({ cooldownSecs: 0 });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("are kept, pending, and sent again after retryAfter; without it they are rolled back", async () => {
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
    // Every place frame the page sends, with when. The first frame for a pixel of `refuse` is
    // answered by the test (with that retryAfter, or none for null) instead of the server.
    const sent = [];
    const refuse = new Map([
      ["103,98", 1000],
      ["97,101", null],
    ]);
    await context.routeWebSocket(/\/ws/, (ws) => {
      const upstream = ws.connectToServer();
      ws.onMessage((message) => {
        const bytes = typeof message === "string" ? null : message;
        if (bytes && bytes[0] === PLACE) {
          const p = { x: bytes.readUInt16LE(1), y: bytes.readUInt16LE(3), requestId: bytes.readUInt32LE(6), at: Date.now() };
          const first = !sent.some((q) => q.x === p.x && q.y === p.y);
          sent.push(p);
          const key = `${p.x},${p.y}`;
          if (first && refuse.has(key)) {
            ws.send(unavailable(p.requestId, refuse.get(key) ?? undefined));
            return;
          }
        }
        upstream.send(message);
      });
      upstream.onMessage((message) => ws.send(message));
    });
    const page = await openPage(context, server.url, { x: 100, y: 100, zoom: 20 });
    const width = await page.evaluate(() => window.__place.info.width);
    const color = 5;
    await page.click(`#palette button[data-index="${color}"]`);

    // Refused with retryAfter 1000: the pixel stays shown, pending, and goes again ~1 s later.
    const target = { x: 103, y: 98 };
    let s = await page.evaluate(([x, y]) => window.__place.screenOf(x, y), [target.x, target.y]);
    await page.mouse.click(s.x, s.y);
    await page.waitForFunction(() => window.__place.pendingPlacements === 1, null, { timeout: 5000, polling: 20 });
    assert.equal(await page.evaluate(([x, y]) => window.__place.colorAt(x, y), [target.x, target.y]), color, "kept while pending");
    await page.waitForFunction(() => window.__place.pendingPlacements === 0, null, { timeout: 5000, polling: 20 });
    await page.waitForFunction(([x, y, c]) => window.__place.colorAt(x, y) === c, [target.x, target.y, color], { timeout: 5000, polling: 20 });
    const again = sent.filter((p) => p.x === target.x && p.y === target.y);
    assert.equal(again.length, 2, JSON.stringify(sent));
    assert.equal(again[1].requestId, again[0].requestId, "the same placement, sent again");
    const waited = again[1].at - again[0].at;
    assert.ok(waited >= 1000 && waited < 2500, `sent again after ${waited} ms`);
    // The served canvas may be a second old.
    let canvas = await serverCanvas(server.url);
    for (let i = 0; i < 30 && canvas[target.y * width + target.x] !== color; i++) {
      await sleep(100);
      canvas = await serverCanvas(server.url);
    }
    assert.equal(canvas[target.y * width + target.x], color, "placed by the retry");

    // Refused without retryAfter (it may have been placed): rolled back at once, not sent again.
    await sleep(300);
    const other = { x: 97, y: 101 };
    s = await page.evaluate(([x, y]) => window.__place.screenOf(x, y), [other.x, other.y]);
    await page.mouse.click(s.x, s.y);
    await page.waitForFunction(([x, y]) => window.__place.colorAt(x, y) === 0, [other.x, other.y], { timeout: 5000, polling: 20 });
    assert.equal(await page.evaluate(() => window.__place.pendingPlacements), 0);
    await sleep(2000);
    assert.equal(sent.filter((p) => p.x === other.x && p.y === other.y).length, 1, "never sent again");
    canvas = await serverCanvas(server.url);
    assert.equal(canvas[other.y * width + other.x], 0, "nothing placed");
  });
});
