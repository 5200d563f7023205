// Network blips: a page whose connection drops while someone else paints
// comes back holding exactly what the server holds: no stale pixel.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jsonClient, launchBrowser, openPage, serverCanvas, sleep, startServer, waitForCanvasRgb, hexRgb } from "./helpers.mjs";

describe("reconnect", () => {
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

  it("a dropped connection resynchronises with no stale pixel while another client paints", async () => {
    const page = await openPage(await browser.newContext({ viewport: { width: 800, height: 600 } }), server.url, { x: 256, y: 256, zoom: 4 });
    const info = await page.evaluate(() => window.__place.info);
    const bot = await jsonClient(server.url);
    // 200 x 150 canvas px around (256, 256) are on screen.
    const spot = (i) => ({ x: 170 + ((i * 37) % 170), y: 190 + ((i * 53) % 130), color: 1 + (i % 15) });
    let i = 0;
    const paint = async (n) => {
      for (const end = i + n; i < end; i++) {
        const p = spot(i);
        const answer = await bot.place(p.x, p.y, p.color);
        assert.equal(answer.type, "success", JSON.stringify(answer));
      }
    };

    await paint(20);
    // Live updates arrive...
    const last = spot(i - 1);
    await page.waitForFunction(([x, y, c]) => window.__place.colorAt(x, y) === c, [last.x, last.y, last.color]);

    // ...then the line goes down while the painting goes on.
    const seqBefore = await page.evaluate(() => window.__place.heldSeq(3, 3));
    const tilesBefore = await page.evaluate(() => window.__place.received.tile);
    await page.evaluate(() => window.__place.dropConnection(1500));
    await page.waitForFunction(() => window.__place.status === "reconnecting");
    await paint(60);
    assert.equal(await page.evaluate(() => window.__place.status), "reconnecting", "painted while offline");
    await page.waitForFunction(() => window.__place.status === "live", null, { timeout: 10_000 });
    await paint(20);
    await sleep(500);

    // Every pixel of every tile the page holds matches the server, and the canvas shows it.
    const truth = await serverCanvas(server.url);
    const shown = await page.evaluate(() =>
      window.__place.subscribed.map(([tx, ty]) => {
        const colors = [];
        for (let y = ty * 64; y < ty * 64 + 64; y++) for (let x = tx * 64; x < tx * 64 + 64; x++) colors.push(window.__place.colorAt(x, y));
        return { tx, ty, colors };
      }),
    );
    const mismatches = [];
    for (const { tx, ty, colors } of shown) {
      colors.forEach((c, k) => {
        const x = tx * 64 + (k % 64);
        const y = ty * 64 + Math.floor(k / 64);
        if (x < info.width && y < info.height && c !== truth[y * info.width + x]) mismatches.push([x, y, c, truth[y * info.width + x]]);
      });
    }
    assert.ok(shown.length >= 16, `${shown.length} tiles subscribed`);
    assert.deepEqual(mismatches.slice(0, 10), []);
    for (let k = 0; k < i; k += 7) {
      const p = spot(k);
      await waitForCanvasRgb(page, p.x, p.y, hexRgb(info.palette[truth[p.y * info.width + p.x]]), 1000);
    }
    const tilesAfter = await page.evaluate(() => window.__place.received.tile);
    console.log(`snapshots resent after the reconnect: ${tilesAfter - tilesBefore} (held tiles resubscribed with their seqs)`);
    const seqAfter = await page.evaluate(() => window.__place.heldSeq(3, 3));
    assert.ok(seqAfter > seqBefore, `seq of tile (3,3) went from ${seqBefore} to ${seqAfter}`);
    bot.close();
    await page.context().close();
  });
});
