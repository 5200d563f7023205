// Painting as people do it: a click in one page shows in another page; a
// placement by a JSON-protocol script shows in a page; a second placement
// inside the cooldown is rolled back.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  canvasRgb,
  hexRgb,
  jsonClient,
  launchBrowser,
  openPage,
  screenshot,
  startServer,
  waitForCanvasRgb,
} from "./helpers.mjs";

describe("painting", () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer({ cooldownSecs: 30 });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("a pixel clicked in one page appears in another page in the right colour", async () => {
    const view = { x: 100, y: 100, zoom: 20 };
    const alice = await openPage(await browser.newContext({ viewport: { width: 1280, height: 800 } }), server.url, view);
    const bob = await openPage(await browser.newContext({ viewport: { width: 1000, height: 700 } }), server.url, view);

    const palette = await alice.evaluate(() => window.__place.info.palette);
    const color = 5;
    await alice.click(`#palette button[data-index="${color}"]`);
    const target = { x: 103, y: 98 };
    const s = await alice.evaluate(([x, y]) => window.__place.screenOf(x, y), [target.x, target.y]);
    await alice.mouse.click(s.x, s.y);
    await bob.waitForFunction(([x, y, c]) => window.__place.colorAt(x, y) === c, [target.x, target.y, color], { timeout: 5000 });
    await waitForCanvasRgb(bob, target.x, target.y, hexRgb(palette[color]));
    // The neighbours are untouched.
    assert.deepEqual(await canvasRgb(bob, target.x + 1, target.y), hexRgb(palette[0]));
    // The clicking page shows it too, and its cooldown runs.
    await waitForCanvasRgb(alice, target.x, target.y, hexRgb(palette[color]));
    assert.ok((await alice.evaluate(() => window.__place.nextPlacementIn)) > 20_000);
    await alice.waitForFunction(() => document.getElementById("cooldown").textContent.startsWith("Next pixel in"));
    const s2 = await alice.evaluate(([x, y]) => window.__place.screenOf(x, y), [target.x + 2, target.y + 2]);
    await alice.mouse.move(s2.x, s2.y);
    console.log("screenshot:", await screenshot(alice, "desktop-1280x800.png"));
    await alice.context().close();
    await bob.context().close();
  });

  it("a pixel placed by a JSON-protocol client appears in a page", async () => {
    const page = await openPage(await browser.newContext(), server.url, { x: 1500, y: 700, zoom: 10 });
    const palette = await page.evaluate(() => window.__place.info.palette);
    const bot = await jsonClient(server.url);
    const answer = await bot.place(1502, 701, 13);
    assert.equal(answer.type, "success", JSON.stringify(answer));
    await waitForCanvasRgb(page, 1502, 701, hexRgb(palette[13]));
    bot.close();
    await page.context().close();
  });

  it("a placement inside the cooldown is rolled back with a message", async () => {
    // Two tabs of one person: the second tab does not know the first one just placed.
    const context = await browser.newContext();
    const view = { x: 300, y: 300, zoom: 16 };
    const first = await openPage(context, server.url, view);
    const second = await openPage(context, server.url, view);
    const palette = await first.evaluate(() => window.__place.info.palette);

    await first.click('#palette button[data-index="2"]');
    let s = await first.evaluate(() => window.__place.screenOf(300, 300));
    await first.mouse.click(s.x, s.y);
    await waitForCanvasRgb(second, 300, 300, hexRgb(palette[2]));

    // Record what the second tab shows right after its click, before the answer.
    await second.click('#palette button[data-index="6"]');
    await second.evaluate(() => {
      window.__shownAfterClick = [];
      document.getElementById("board").addEventListener("pointerup", () => window.__shownAfterClick.push(window.__place.colorAt(301, 300)));
    });
    s = await second.evaluate(() => window.__place.screenOf(301, 300));
    await second.mouse.click(s.x, s.y);
    assert.deepEqual(await second.evaluate(() => window.__shownAfterClick), [6], "the optimistic pixel shows at once");
    await second.waitForFunction(() => !document.getElementById("toast").hidden);
    const toast = await second.textContent("#toast");
    assert.match(toast, /wait/i);
    await second.waitForFunction(() => window.__place.colorAt(301, 300) === 0);
    await waitForCanvasRgb(second, 301, 300, hexRgb(palette[0]));
    assert.ok((await second.evaluate(() => window.__place.nextPlacementIn)) > 10_000, "the cooldown from the error is shown");
    // The first tab never saw the rejected pixel.
    assert.deepEqual(await canvasRgb(first, 301, 300), hexRgb(palette[0]));
    await context.close();
  });
});
