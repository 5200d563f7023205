// The timelapse viewer: the Timelapse button shows the canvas at the moment
// the slider says, exactly once the slider rests (compared with what was
// painted then), and "Render GIF" renders the span and offers the download.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { hexRgb, jsonClient, launchBrowser, openPage, screenshot, sleep, startServer } from "./helpers.mjs";

/** The RGB of canvas pixel (x, y) in the timelapse image shown (read from the image itself). */
async function frameRgb(page, x, y) {
  return page.evaluate(
    ([x, y]) => {
      const img = document.getElementById("timelapse-frame");
      const c = document.createElement("canvas");
      c.width = img.naturalWidth;
      c.height = img.naturalHeight;
      const ctx = c.getContext("2d");
      ctx.drawImage(img, 0, 0);
      return [...ctx.getImageData(x, y, 1, 1).data.slice(0, 3)];
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
    const context = await browser.newContext({ viewport: { width: 900, height: 800 } });
    const page = await openPage(context, server.url, { x: 128, y: 128, zoom: 2 });
    const palette = await page.evaluate(() => window.__place.info.palette);
    await page.click("#timelapse-button");
    await waitExact(page);
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

    await page.click("#timelapse-render");
    await page.waitForSelector("#timelapse-download:not([hidden])", { timeout: 30_000 });
    const href = await page.getAttribute("#timelapse-download", "href");
    const gif = await fetch(new URL(href, server.url));
    assert.equal(gif.headers.get("content-type"), "image/gif");
    assert.equal(Buffer.from(await gif.arrayBuffer()).subarray(0, 6).toString(), "GIF89a");
    const done = await screenshot(page, "timelapse-render.png");
    console.log(`screenshot: ${done}`);
    await page.click("#timelapse-close");
    assert.equal(await page.evaluate(() => document.getElementById("timelapse-frame").hidden), true);
    await context.close();
  });
});
