// Finding your way and placing, on desktop and phone: the coordinate box, the
// + and − buttons, the minimap's click-to-jump, "copy link to this pixel", the
// hotkeys and their help, the colour preview, drags that never place, the
// tooltip that shows your own placement at once, the remembered colour, the
// title's countdown, and a phone tap that zooms in to aim.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { canvasRgb, hexRgb, launchBrowser, openPage, screenshot, sleep, startServer, waitForCanvasRgb } from "./helpers.mjs";

const place = (page) => page.evaluate(() => window.__place);

describe("finding your way", () => {
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

  // Each size places its own pixel: on a pixel the first already painted, the wait for the
  // colour would pass before the click's placement was even sent.
  for (const [viewport, px] of [
    [{ width: 1920, height: 1080 }, 502],
    [{ width: 1280, height: 800 }, 504],
  ]) {
    it(`desktop ${viewport.width}x${viewport.height}: box, buttons, minimap, link, hotkeys, preview, placing`, async () => {
      const context = await browser.newContext({ viewport });
      await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
      const page = await openPage(context, server.url, { x: 500, y: 400, zoom: 16 });
      const { palette } = (await place(page)).info;
      const name = `${viewport.width}x${viewport.height}`;

      // The default brush is black, and the coordinate box shows the view's centre before any hover.
      assert.equal(palette[await page.evaluate(() => window.__place.selectedColor)], "#222222");
      assert.equal(await page.textContent("#pointer-text"), "(500, 400)");

      // + and − buttons.
      await page.click("#zoom-in");
      assert.equal((await place(page)).view.zoom, 24);
      await page.click("#zoom-out");
      assert.equal((await place(page)).view.zoom, 16);

      // Hotkeys: a digit picks a colour, arrows pan, ? opens the help, Esc closes it.
      await page.keyboard.press("3");
      assert.equal(await page.evaluate(() => window.__place.selectedColor), 2);
      await page.keyboard.press("]");
      assert.equal(await page.evaluate(() => window.__place.selectedColor), 3);
      const v0 = (await place(page)).view;
      await page.keyboard.press("ArrowRight");
      assert.ok((await place(page)).view.cx > v0.cx);
      await page.keyboard.press("?");
      await page.waitForSelector("#help:not([hidden])");
      console.log("screenshot:", await screenshot(page, `way-help-${name}.png`));
      await page.keyboard.press("Escape");
      await page.waitForSelector("#help", { state: "hidden" });

      // Hovering previews the colour; a 3 px drag places nothing.
      await page.keyboard.press("6");
      await page.evaluate(() => window.__place.setView(500, 400, 16));
      await sleep(50);
      const s = await page.evaluate((px) => window.__place.screenOf(px, 401), px);
      await page.mouse.move(s.x, s.y);
      await page.waitForFunction(() => !document.getElementById("reticle").hidden);
      assert.equal(await page.evaluate(() => getComputedStyle(document.getElementById("reticle")).backgroundColor), `rgb(${hexRgb(palette[5]).join(", ")})`);
      assert.equal(await page.textContent("#pointer-text"), `(${px}, 401)`);
      await page.mouse.down();
      await page.mouse.move(s.x + 3, s.y, { steps: 3 });
      await page.mouse.up();
      await sleep(200);
      assert.equal(await page.evaluate(() => window.__place.nextPlacementIn), 0, "a 3 px drag is no click");
      await page.evaluate(() => window.__place.setView(500, 400, 16));
      await sleep(50);
      const t = await page.evaluate((px) => window.__place.screenOf(px, 401), px);
      await page.mouse.move(t.x, t.y);

      // A click places, and once the server has acknowledged it the tooltip says so at once.
      // (The colour shows before the acknowledgement; that can take a while on a busy machine.)
      const acked = (await place(page)).received.success;
      await page.mouse.click(t.x, t.y);
      await waitForCanvasRgb(page, px, 401, hexRgb(palette[5]));
      await page.waitForFunction((n) => window.__place.received.success > n, acked, { timeout: 10_000 });
      await page.waitForFunction(() => /you · just now/.test(document.getElementById("pixel-info").textContent), null, { timeout: 1000 });
      assert.ok(await page.isVisible("#pixel-info"));
      const tip = await page.locator("#pixel-info").boundingBox();
      assert.ok(tip.x >= t.x + 20 || tip.x + tip.width <= t.x - 20, "the tooltip keeps clear of the cursor");
      await page.waitForFunction(() => /^0:[0-9]{2} · place$/.test(document.title));
      console.log("screenshot:", await screenshot(page, `way-placed-${name}.png`));

      // The minimap: a click there jumps the view.
      const map = await page.locator("#minimap").boundingBox();
      await page.mouse.click(map.x + map.width * 0.25, map.y + map.height * 0.75);
      const { info, view } = await place(page);
      assert.ok(Math.abs(view.cx - info.width * 0.25) < info.width / 100, `cx ${view.cx}`);
      assert.ok(Math.abs(view.cy - info.height * 0.75) < info.height / 100, `cy ${view.cy}`);

      // The link to a pixel.
      await page.click("#copy-link");
      const link = await page.evaluate(() => navigator.clipboard.readText());
      assert.match(link, new RegExp(`^${server.url}/#x=\\d+&y=\\d+&zoom=16$`));

      // The canvas's edge stands out from what is around it.
      await page.evaluate(() => window.__place.setView(2, 2, 4));
      await sleep(100);
      assert.deepEqual(await canvasRgb(page, -6, -6), [142, 142, 155]);
      console.log("screenshot:", await screenshot(page, `way-edge-${name}.png`));

      // The colour is remembered.
      await page.reload();
      await page.waitForFunction(() => window.__place?.status === "live");
      assert.equal(await page.evaluate(() => window.__place.selectedColor), 5);

      // After the reload the tooltip reads the server's history, which names the guest by its
      // generated name: the guest's own placement still says "you".
      await page.evaluate(() => window.__place.setView(500, 400, 16));
      await sleep(50);
      const r = await page.evaluate((px) => window.__place.screenOf(px, 401), px);
      await page.mouse.move(r.x - 40, r.y);
      await page.mouse.move(r.x, r.y);
      await page.waitForFunction(() => /\byou · /.test(document.getElementById("pixel-info").textContent), null, { timeout: 5000 });
      console.log("screenshot:", await screenshot(page, `way-history-you-${name}.png`));
      await context.close();
    });
  }

  it("phone 390x844: a tap zooms in to aim, confirm says where; the minimap jumps", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 });
    const page = await openPage(context, server.url, { x: 1000, y: 978, zoom: 4 });
    const s = await page.evaluate(() => window.__place.screenOf(1001, 979));
    await page.touchscreen.tap(s.x, s.y);
    await page.waitForSelector("#confirm:not([hidden])");
    assert.equal((await place(page)).view.zoom, 24);
    assert.match(await page.textContent("#confirm"), /Place \(1001, 979\)/);
    // The selected pixel is where it was tapped, now big enough to tap exactly.
    const after = await page.evaluate(() => window.__place.screenOf(1001, 979));
    assert.ok(Math.abs(after.x - s.x) < 13 && Math.abs(after.y - s.y) < 13, JSON.stringify([s, after]));
    console.log("screenshot:", await screenshot(page, "way-phone-aim.png"));

    const map = await page.locator("#minimap").boundingBox();
    await page.touchscreen.tap(map.x + map.width / 2, map.y + map.height / 2);
    const { info, view } = await place(page);
    assert.ok(Math.abs(view.cx - info.width / 2) < info.width / 50, `cx ${view.cx}`);
    await context.close();
  });
});
