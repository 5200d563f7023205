// Moving around: panning changes the subscribed tiles, the URL hash follows
// the view, zooming far out switches to overview mode and back.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { launchBrowser, openPage, paintMany, screenshot, sleep, startServer } from "./helpers.mjs";

describe("view and subscriptions", () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer({ cooldownSecs: 0 });
    browser = await launchBrowser();
    // Something to look at in the screenshots: two diagonals through the centre.
    const pixels = [];
    for (let i = 0; i < 300; i++) {
      pixels.push({ x: 850 + i, y: 850 + i, color: 1 + (Math.floor(i / 20) % 15) });
      pixels.push({ x: 850 + i, y: 1149 - i, color: 1 + (Math.floor(i / 20) % 15) });
    }
    await paintMany(server.url, pixels);
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("opens at the hash's pixel and zoom", async () => {
    const page = await openPage(await browser.newContext({ viewport: { width: 800, height: 600 } }), server.url, { x: 640, y: 320, zoom: 8 });
    const v = await page.evaluate(() => window.__place.view);
    assert.deepEqual(v, { cx: 640.5, cy: 320.5, zoom: 8 });
    // 800x600 at zoom 8 is 100x75 canvas px: tiles 9..10 by 4..5, plus a margin of one.
    const subscribed = await page.evaluate(() => window.__place.subscribed);
    assert.deepEqual(subscribed.map(String).sort(), ["8,3", "8,4", "8,5", "8,6", "9,3", "9,4", "9,5", "9,6", "10,3", "10,4", "10,5", "10,6", "11,3", "11,4", "11,5", "11,6"].sort());
    await page.context().close();
  });

  it("without a hash: the canvas centre, pixels visible", async () => {
    const page = await (await browser.newContext({ viewport: { width: 800, height: 600 } })).newPage();
    await page.goto(server.url);
    await page.waitForFunction(() => window.__place?.status === "live" && window.__place.subscribed.length > 0);
    const v = await page.evaluate(() => window.__place.view);
    assert.equal(v.cx, 1000);
    assert.equal(v.cy, 1000);
    assert.ok(v.zoom >= 2);
    await page.context().close();
  });

  it("dragging pans (never paints) and changes the subscribed tiles; the hash follows", async () => {
    const page = await openPage(await browser.newContext({ viewport: { width: 800, height: 600 } }), server.url, { x: 500, y: 500, zoom: 8 });
    const before = await page.evaluate(() => window.__place.subscribed.map(String));
    await page.mouse.move(600, 300);
    await page.mouse.down();
    for (let i = 1; i <= 20; i++) await page.mouse.move(600 - 30 * i, 300 - 20 * i);
    await page.mouse.up();
    // 600 x 400 screen px at zoom 8 = 75 x 50 canvas px: the centre moved right and down.
    const v = await page.evaluate(() => window.__place.view);
    assert.equal(v.cx, 575.5);
    assert.equal(v.cy, 550.5);
    await page.waitForFunction((b) => window.__place.subscribed.map(String).join() !== b.join(), before);
    await sleep(300);
    const after = await page.evaluate(() => window.__place.subscribed.map(String));
    assert.ok(after.includes("10,9") && !after.includes("6,6"), `subscribed ${after}`);
    assert.ok(before.includes("6,6"));
    assert.equal(await page.evaluate(() => window.__place.nextPlacementIn), 0, "a drag placed no pixel");
    await page.waitForFunction(() => location.hash === "#x=575&y=550&zoom=8");
    // Drag back to the centre for a look at live tiles with content.
    await page.evaluate(() => window.__place.setView(1000, 1000, 3));
    await page.waitForFunction(() => window.__place.visiblePending === 0);
    await sleep(100);
    console.log("screenshot:", await screenshot(page, "desktop-800x600-zoom3.png"));
    await page.context().close();
  });

  it("arrow keys pan and +/- zoom around the centre", async () => {
    const page = await openPage(await browser.newContext({ viewport: { width: 800, height: 600 } }), server.url, { x: 500, y: 500, zoom: 8 });
    await page.keyboard.press("ArrowRight");
    let v = await page.evaluate(() => window.__place.view);
    assert.ok(v.cx > 500.5 && v.cy === 500.5);
    await page.keyboard.press("+");
    const z = (await page.evaluate(() => window.__place.view)).zoom;
    assert.ok(z > 8);
    await page.keyboard.press("-");
    await page.keyboard.press("-");
    v = await page.evaluate(() => window.__place.view);
    assert.ok(v.zoom < 8);
    await page.context().close();
  });

  it("the wheel zooms around the pointer, up to 40+ px per pixel", async () => {
    const page = await openPage(await browser.newContext({ viewport: { width: 800, height: 600 } }), server.url, { x: 500, y: 500, zoom: 8 });
    const under = await page.evaluate(() => window.__place.screenOf(520, 510));
    await page.mouse.move(under.x, under.y);
    for (let i = 0; i < 10; i++) await page.mouse.wheel(0, -300);
    await sleep(100);
    const v = await page.evaluate(() => window.__place.view);
    assert.ok(v.zoom >= 40, `zoom ${v.zoom}`);
    const again = await page.evaluate(() => window.__place.screenOf(520, 510));
    assert.ok(Math.abs(again.x - under.x) < v.zoom / 2 + 1 && Math.abs(again.y - under.y) < v.zoom / 2 + 1, "the pixel stayed under the pointer");
    await page.context().close();
  });

  it("zoomed far out it switches to overview mode, unsubscribes everything and says so", async () => {
    const page = await openPage(await browser.newContext({ viewport: { width: 1280, height: 800 } }), server.url, { x: 1000, y: 1000, zoom: 4 });
    for (let i = 0; i < 12; i++) await page.mouse.wheel(0, 300);
    await page.waitForFunction(() => window.__place.mode === "overview");
    await sleep(300);
    // The overview shows what the server holds.
    await page.waitForFunction(() => window.__place.colorAt(850, 850) === 1);
    console.log("screenshot:", await screenshot(page, "desktop-overview.png"));
    assert.deepEqual(await page.evaluate(() => window.__place.subscribed), []);
    assert.equal(await page.isVisible("#overview-note"), true);
    const max = await page.evaluate(() => window.__place.info.maxSubscribedTiles);
    // The whole canvas fits at the smallest zoom.
    const v = await page.evaluate(() => window.__place.view);
    assert.ok(v.zoom * 2000 <= 800, `zoom ${v.zoom}`);
    // Back in: tiles again, never more than the limit.
    for (let i = 0; i < 12; i++) await page.mouse.wheel(0, -300);
    await page.waitForFunction(() => window.__place.mode === "tiles" && window.__place.subscribed.length > 0);
    const n = (await page.evaluate(() => window.__place.subscribed)).length;
    assert.ok(n <= max);
    assert.equal(await page.isVisible("#overview-note"), false);
    await page.context().close();
  });
});
