// The timelapse viewer: the Timelapse button shows the view at the moment the
// slider says, exactly once the slider rests (compared with what was painted
// then); panning and zooming work inside it; Play steps through the span;
// the palette stays in sight; "Render GIF" (for accounts) renders the view's rectangle with
// the frames chosen and offers the download. Desktop and phone.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { hexRgb, jsonClient, launchBrowser, openPage, screenshot, sleep, startServer } from "./helpers.mjs";

/** The RGB of canvas pixel (x, y) in the timelapse image shown (read from the image itself, which holds `rect`). */
async function frameRgb(page, x, y) {
  return page.evaluate(
    ([x, y]) => {
      const img = document.getElementById("timelapse-frame");
      const r = window.__place.timelapse.rect;
      const c = document.createElement("canvas");
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const ctx = c.getContext("2d");
      ctx.drawImage(img, 0, 0);
      return [...ctx.getImageData(x - r.x, y - r.y, 1, 1).data.slice(0, 3)];
    },
    [x, y],
  );
}

/** Waits until the viewer shows the exact frame of the slider's moment, loaded. */
async function waitExact(page) {
  await page.waitForFunction(
    () => {
      const t = window.__place.timelapse;
      const img = document.getElementById("timelapse-frame");
      return t.exactAt !== null && t.exactAt === t.at && img.complete && img.src.includes(`t=${t.exactAt}`) && !document.getElementById("timelapse-exact").hidden;
    },
    null,
    { timeout: 10_000, polling: 50 },
  );
}

describe("timelapse viewer", () => {
  let server;
  let browser;
  let painter;

  before(async () => {
    server = await startServer({ cooldownSecs: 0, extraArgs: ["--timelapse-snapshot-secs", "1", "--width", "256", "--height", "256"] });
    browser = await launchBrowser();
    painter = await jsonClient(server.url);
    // First a red square, then (after a snapshot) a blue bar across it.
    for (let i = 0; i < 36; i++) assert.equal((await painter.place(100 + (i % 6) * 4, 100 + Math.floor(i / 6) * 4, 5)).type, "success");
    await sleep(2500);
    for (let i = 0; i < 12; i++) assert.equal((await painter.place(100 + i * 2, 108, 13)).type, "success");
    await sleep(1500);
  });

  after(async () => {
    painter?.close();
    await browser?.close();
    await server?.stop();
  });

  it("scrubs through time, each resting moment exact, and renders a GIF to download", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await openPage(context, server.url, { x: 110, y: 110, zoom: 8 });
    const palette = await page.evaluate(() => window.__place.info.palette);
    await page.click("#timelapse-button");
    await waitExact(page);
    // The view's rectangle, not the whole canvas; the palette in sight.
    const rect = await page.evaluate(() => window.__place.timelapse.rect);
    assert.ok(rect.width < 256 && rect.height < 256 && rect.y > 0, JSON.stringify(rect));
    assert.ok(await page.isVisible("#palette"));
    const box = await page.locator("#timelapse-panel").boundingBox();
    const dock = await page.locator("#dock").boundingBox();
    assert.ok(box.y + box.height <= dock.y, "the panel leaves the palette visible");
    // The latest moment: the blue bar over the red square.
    assert.deepEqual(await frameRgb(page, 108, 108), hexRgb(palette[13]));
    assert.deepEqual(await frameRgb(page, 104, 104), hexRgb(palette[5]));
    const end = await screenshot(page, "timelapse-end.png");
    console.log(`screenshot: ${end}`);

    // Back to the start: only the first pixel placed; the bar's place is blank.
    await page.fill("#timelapse-slider", "0");
    await page.dispatchEvent("#timelapse-slider", "input");
    await waitExact(page);
    assert.deepEqual(await frameRgb(page, 100, 100), hexRgb(palette[5]));
    assert.deepEqual(await frameRgb(page, 108, 108), hexRgb(palette[0]));

    // A moment between the two phases: the square whole, no bar.
    await page.fill("#timelapse-slider", "700");
    await page.dispatchEvent("#timelapse-slider", "input");
    await waitExact(page);
    assert.deepEqual(await frameRgb(page, 108, 108), hexRgb(palette[5]), "the square is there, the bar not yet");
    const middle = await screenshot(page, "timelapse-middle.png");
    console.log(`screenshot: ${middle}`);

    // Pan and zoom inside: the frame follows and is fetched again for a view it does not cover.
    await page.mouse.move(600, 400);
    await page.mouse.down();
    await page.mouse.move(300, 300, { steps: 5 });
    await page.mouse.up();
    await page.evaluate(() => window.__place.setView(60, 60, 4));
    await page.waitForFunction(() => window.__place.timelapse.rect.y === 0);
    await waitExact(page);
    const moved = await page.evaluate(() => window.__place.timelapse.rect);
    assert.ok(moved.x === 0 && moved.y === 0, JSON.stringify(moved));
    assert.deepEqual(await frameRgb(page, 108, 108), hexRgb(palette[5]), "still 700/1000 of the way");

    // Play runs to the end.
    await page.selectOption("#timelapse-speed", "8");
    await page.click("#timelapse-play");
    await page.waitForFunction(() => document.getElementById("timelapse-slider").value === "1000" && document.getElementById("timelapse-play").textContent === "▶", null, { timeout: 20_000 });
    await waitExact(page);
    assert.deepEqual(await frameRgb(page, 108, 108), hexRgb(palette[13]));

    // A guest is told that renders need an account, and nothing is asked of the server.
    let guestRenders = 0;
    page.on("request", (r) => (guestRenders += r.url().includes("/api/v1/timelapse/render") ? 1 : 0));
    await page.click("#timelapse-render");
    await page.waitForFunction(() => document.getElementById("timelapse-job").textContent.includes("needs an account"));
    assert.equal(guestRenders, 0, "no render request for a guest");
    console.log(`screenshot: ${await screenshot(page, "timelapse-render-guest.png")}`);
    await page.click("#account-button");
    await page.waitForSelector("#account-dialog[open]");
    await page.fill("#account-username", "renderer");
    await page.fill("#account-password", "a long password");
    await page.click("#account-register");
    await page.waitForFunction(() => document.getElementById("account-name").textContent === "renderer");
    await page.waitForSelector("#account-dialog:not([open])", { state: "attached" });

    // The GIF is of this view's rectangle, with the frames chosen.
    await page.evaluate(() => window.__place.setView(110, 110, 8));
    await page.selectOption("#timelapse-frames", "30");
    const [request] = await Promise.all([page.waitForRequest("**/api/v1/timelapse/render"), page.click("#timelapse-render")]);
    const asked = request.postDataJSON();
    assert.equal(asked.frames, 30);
    assert.equal(asked.delayMs, 20, "100 ms at 8x is 13 ms, bounded to 20");
    const view = await page.evaluate(() => window.__place.view);
    assert.ok(Math.abs(asked.x + asked.width / 2 - view.cx) <= 1 && asked.width >= 160 && asked.width <= 161, JSON.stringify(asked));
    await page.waitForSelector("#timelapse-download:not([hidden])", { timeout: 30_000 });
    const href = await page.getAttribute("#timelapse-download", "href");
    const gif = await fetch(new URL(href, server.url));
    assert.equal(gif.headers.get("content-type"), "image/gif");
    const bytes = Buffer.from(await gif.arrayBuffer());
    assert.equal(bytes.subarray(0, 6).toString(), "GIF89a");
    assert.equal(bytes.readUInt16LE(6), asked.width);
    assert.equal(bytes.readUInt16LE(8), asked.height);
    const done = await screenshot(page, "timelapse-render.png");
    console.log(`screenshot: ${done}`);
    await page.click("#timelapse-close");
    assert.equal(await page.evaluate(() => document.getElementById("timelapse-frame").hidden), true);
    await context.close();
  });

  it("on a phone: the view's timelapse under the top bar, the palette below", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 });
    const page = await openPage(context, server.url, { x: 110, y: 110, zoom: 8 });
    await page.tap("#timelapse-button");
    await waitExact(page);
    const rect = await page.evaluate(() => window.__place.timelapse.rect);
    assert.ok(rect.width <= 390 / 8 * 1.5 + 2, JSON.stringify(rect));
    assert.ok(await page.isVisible("#palette"));
    assert.ok(await page.isVisible("#timelapse-button"), "the panel leaves the top bar alone");
    const box = await page.locator("#timelapse-panel").boundingBox();
    const dock = await page.locator("#dock").boundingBox();
    assert.ok(box.y + box.height <= dock.y);
    console.log("screenshot:", await screenshot(page, "timelapse-phone.png"));
    await context.close();
  });
});
