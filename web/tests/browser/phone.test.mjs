// The phone flow under touch emulation: one finger pans, two fingers pinch,
// a tap selects a pixel and only the confirm button places it.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { hexRgb, launchBrowser, openPage, screenshot, sleep, startServer, waitForCanvasRgb } from "./helpers.mjs";

/** Touch input through the DevTools protocol: Playwright has taps but no drags. */
async function touch(page) {
  const cdp = await page.context().newCDPSession(page);
  const send = (type, points) => cdp.send("Input.dispatchTouchEvent", { type, touchPoints: points.map(([x, y], id) => ({ x, y, id })) });
  return {
    /** Moves fingers from `from` to `to` (arrays of [x, y]) in `steps`. */
    async drag(from, to, steps = 10) {
      await send("touchStart", from);
      for (let s = 1; s <= steps; s++) {
        await send("touchMove", from.map(([x, y], k) => [x + ((to[k][0] - x) * s) / steps, y + ((to[k][1] - y) * s) / steps]));
      }
      await send("touchEnd", []);
    },
  };
}

describe("phone", () => {
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

  it("tap selects, confirm places; one finger pans and two pinch without placing", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 });
    const page = await openPage(context, server.url, { x: 800, y: 800, zoom: 12 });
    const palette = await page.evaluate(() => window.__place.info.palette);
    const fingers = await touch(page);

    // One finger pans.
    let v0 = await page.evaluate(() => window.__place.view);
    await fingers.drag([[200, 400]], [[100, 300]]);
    let v = await page.evaluate(() => window.__place.view);
    assert.ok(Math.abs(v.cx - (v0.cx + 100 / 12)) < 0.01 && Math.abs(v.cy - (v0.cy + 100 / 12)) < 0.01, JSON.stringify(v));

    // Two fingers pinch out: zoom grows.
    v0 = v;
    await fingers.drag([[150, 400], [250, 400]], [[100, 400], [300, 400]]);
    v = await page.evaluate(() => window.__place.view);
    assert.ok(Math.abs(v.zoom - v0.zoom * 2) < 0.01, `zoom ${v0.zoom} -> ${v.zoom}`);
    assert.equal(await page.isVisible("#confirm"), false, "panning and pinching select nothing");
    assert.equal(await page.evaluate(() => window.__place.nextPlacementIn), 0, "and place nothing");

    // A tap selects a pixel: the reticle and the confirm button show, nothing is placed yet.
    await page.evaluate(() => window.__place.setView(800, 800, 12));
    await sleep(50);
    await page.tap('#palette button[data-index="8"]');
    const s = await page.evaluate(() => window.__place.screenOf(801, 802));
    await page.touchscreen.tap(s.x, s.y);
    await page.waitForSelector("#confirm:not([hidden])");
    assert.match(await page.textContent("#confirm"), /Place \(801, 802\)/);
    assert.equal(await page.isVisible("#reticle"), true);
    assert.equal(await page.evaluate(() => window.__place.colorAt(801, 802)), 0);
    console.log("screenshot:", await screenshot(page, "phone-390x844-selected.png"));

    await page.tap("#confirm");
    await waitForCanvasRgb(page, 801, 802, hexRgb(palette[8]));
    await page.waitForFunction(() => window.__place.nextPlacementIn > 0);
    await page.waitForFunction(() => document.getElementById("confirm").hidden);
    console.log("screenshot:", await screenshot(page, "phone-390x844-placed.png"));
    await context.close();
  });
});
