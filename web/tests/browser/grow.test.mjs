// Growing the canvas while a page is open: an administrator runs `place admin
// resize`, the open pages (desktop and phone) take the new size without a
// reload (renderer, minimap, view bounds), and a player paints in the new area.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { hexRgb, jsonClient, launchBrowser, openPage, screenshot, startServer, waitForCanvasRgb, waitReady } from "./helpers.mjs";

const ADMIN = { name: "root", password: "grow the canvas" };

describe("growing the canvas", () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer({ admins: [ADMIN], extraArgs: ["--width", "256", "--height", "192", "--timelapse-snapshot-secs", "1"] });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("open pages show the new area without a reload, and a player paints in it", async () => {
    const desktop = await openPage(await browser.newContext({ viewport: { width: 1280, height: 800 } }), server.url, { x: 240, y: 180, zoom: 4 });
    const phone = await openPage(
      await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 }),
      server.url,
      { x: 240, y: 180, zoom: 4 },
    );
    const before = await desktop.evaluate(() => window.__place.info);
    assert.deepEqual([before.width, before.height], [256, 192]);
    // Pixels near the old corner, which must stay where they are.
    const bot = await jsonClient(server.url);
    const corner = [
      [255, 191, 13],
      [253, 190, 2],
      [251, 189, 9],
    ];
    for (const [x, y, c] of corner) assert.equal((await bot.place(x, y, c)).type, "success");
    await waitForCanvasRgb(desktop, 255, 191, hexRgb(before.palette[13]));
    console.log("screenshot:", await screenshot(desktop, "grow-before-1280x800.png"));
    console.log("screenshot:", await screenshot(phone, "grow-before-390x844.png"));

    // A timelapse snapshot of the 256x192 canvas, covering every placement so far, is taken
    // before it grows (waited for, not slept on: a busy machine takes it later than a quiet one).
    const deadline = Date.now() + 20_000;
    for (;;) {
      const list = await (await fetch(`${server.url}/api/v1/timelapse/snapshots`)).json();
      if (list.lastEventAt !== null && list.snapshots.some((s) => s.coversUntil >= list.lastEventAt)) break;
      assert.ok(Date.now() < deadline, `no snapshot covers the placements: ${JSON.stringify(list)}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    // The CLI, signed in as the administrator, grows it through the running server.
    const bin = process.env.PLACE_BIN ?? resolve(import.meta.dirname, "../../../target/debug/place");
    const resize = spawnSync(bin, ["admin", "resize", "400", "320", "--url", server.url, "--user", ADMIN.name], {
      input: `${ADMIN.password}\n`,
      encoding: "utf8",
    });
    assert.equal(resize.status, 0, resize.stderr);
    assert.match(resize.stdout, /canvas grown from 256x192 to 400x320/);

    for (const [page, view] of [
      [desktop, "#x=320&y=235&zoom=8"],
      [phone, "#x=340&y=250&zoom=8"],
    ]) {
      await page.waitForFunction(() => window.__place.info.width === 400 && window.__place.info.height === 320, null, { timeout: 5000 });
      // Same page, no reload: the view may now go into the new area.
      await page.evaluate((hash) => (location.hash = hash), view);
      await waitReady(page);
      const spot = await page.evaluate(() => window.__place.screenOf(340, 250));
      assert.ok(spot.x > 0 && spot.y > 0, `(340,250) is on screen: ${JSON.stringify(spot)}`);
    }
    // Nothing placed moved.
    for (const [x, y, c] of corner) await waitForCanvasRgb(desktop, x, y, hexRgb(before.palette[c]));
    bot.close();
    const palette = await desktop.evaluate(() => window.__place.info.palette);
    assert.deepEqual(await desktop.evaluate(() => window.__place.colorAt(340, 250)), 0, "the new area is empty");

    // A player paints in the new area; the other page sees it.
    const color = 5;
    await desktop.click(`#palette button[data-index="${color}"]`);
    const s = await desktop.evaluate(() => window.__place.screenOf(340, 250));
    await desktop.mouse.click(s.x, s.y);
    // The hover outline would cover the pixel's centre.
    await desktop.mouse.move(s.x - 100, s.y - 100);
    await waitForCanvasRgb(desktop, 340, 250, hexRgb(palette[color]));
    await phone.waitForFunction(() => window.__place.colorAt(340, 250) === 5, null, { timeout: 5000 });
    await waitForCanvasRgb(phone, 340, 250, hexRgb(palette[color]));
    // The minimap is the grown canvas's shape (400x320 is 5:4).
    const map = await desktop.evaluate(() => {
      const r = document.getElementById("minimap").getBoundingClientRect();
      return { width: r.width, height: r.height };
    });
    assert.ok(Math.abs(map.width / map.height - 400 / 320) < 0.05, `minimap ${JSON.stringify(map)}`);
    console.log("screenshot:", await screenshot(desktop, "grow-after-1280x800.png"));
    console.log("screenshot:", await screenshot(phone, "grow-after-390x844.png"));

    // The timelapse just before the new pixel shows the snapshot of the smaller canvas at its own
    // size, not stretched over the grown one (exact frames are held back, so the snapshot stays).
    await desktop.route("**/api/v1/timelapse/frame**", () => {});
    await desktop.evaluate(() => (location.hash = "#x=200&y=160&zoom=2"));
    await desktop.click("#timelapse-button");
    await desktop.fill("#timelapse-slider", "990");
    await desktop.dispatchEvent("#timelapse-slider", "input");
    await desktop.waitForFunction(
      () => {
        const r = window.__place.timelapse.rect;
        return r !== null && r.width === 256 && r.height === 192;
      },
      null,
      { timeout: 5000 },
    );
    console.log("screenshot:", await screenshot(desktop, "grow-timelapse-before-1280x800.png"));
    await desktop.context().close();
    await phone.context().close();
  });
});
