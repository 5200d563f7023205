// Who placed a pixel: hovering it shows the tooltip, which follows a new
// placement there; a long press does the same on a phone without placing;
// the heatmap button lays the recent activity over the canvas.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { hexRgb, jsonClient, launchBrowser, openPage, screenshot, sleep, startServer, waitForCanvasRgb } from "./helpers.mjs";

async function username(baseUrl, cookie) {
  const res = await fetch(`${baseUrl}/api/v1/auth/me`, { headers: { Cookie: cookie } });
  return (await res.json()).username;
}

/** The tooltip's lines (the first is the pixel's coordinates), or null while hidden. */
async function tooltipLines(page) {
  return page.evaluate(() => {
    const t = document.getElementById("pixel-info");
    return t.hidden ? null : [...t.children].map((c) => c.textContent);
  });
}

async function waitForTooltip(page, pred, what, timeout = 5000) {
  const deadline = Date.now() + timeout;
  let lines = null;
  while (Date.now() < deadline) {
    lines = await tooltipLines(page);
    if (lines && pred(lines)) return lines;
    await sleep(50);
  }
  throw new Error(`tooltip never showed ${what}: ${JSON.stringify(lines)}`);
}

describe("history", () => {
  let server;
  let browser;
  let other;
  let otherName;

  before(async () => {
    server = await startServer({ cooldownSecs: 0 });
    browser = await launchBrowser();
    other = await jsonClient(server.url);
    otherName = await username(server.url, other.cookie);
    // Someone painted a little cluster around (100, 100), and a few pixels elsewhere.
    for (let i = 0; i < 12; i++) assert.equal((await other.place(96 + (i % 4) * 3, 96 + Math.floor(i / 4) * 3, 3 + (i % 5))).type, "success");
    for (const [x, y] of [[150, 60], [40, 150], [160, 160]]) assert.equal((await other.place(x, y, 12)).type, "success");
    assert.equal((await other.place(100, 100, 5)).type, "success");
  });

  after(async () => {
    other?.close();
    await browser?.close();
    await server?.stop();
  });

  it("hovering a pixel shows who placed it and when, and follows a new placement there", async () => {
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
    const page = await openPage(context, server.url, { x: 100, y: 100, zoom: 16 });
    const palette = await page.evaluate(() => window.__place.info.palette);
    await waitForCanvasRgb(page, 100, 100, hexRgb(palette[5]));
    const s = await page.evaluate(() => window.__place.screenOf(100, 100));
    await page.mouse.move(s.x, s.y);
    const lines = await waitForTooltip(page, (l) => l.length >= 2, "a placement");
    assert.equal(lines[0], "(100, 100)");
    assert.match(lines[1], new RegExp(`^${otherName} · (just now|\\d+ s ago)$`));
    const swatch = await page.$eval("#pixel-info .latest i", (i) => getComputedStyle(i).backgroundColor);
    const [r, g, b] = hexRgb(palette[5]);
    assert.equal(swatch, `rgb(${r}, ${g}, ${b})`);
    console.log("screenshot:", await screenshot(page, "history-tooltip.png"));

    // The pixel changes while the tooltip shows: it asks again and lists the new placement first.
    assert.equal((await other.place(100, 100, 9)).type, "success");
    const after = await waitForTooltip(page, (l) => l.length >= 3, "the new placement");
    assert.match(after[1], new RegExp(`^${otherName} · `));
    const latest = await page.$eval("#pixel-info .latest i", (i) => getComputedStyle(i).backgroundColor);
    const [r9, g9, b9] = hexRgb(palette[9]);
    assert.equal(latest, `rgb(${r9}, ${g9}, ${b9})`);

    // An empty pixel says so; leaving the canvas hides the tooltip.
    const e = await page.evaluate(() => window.__place.screenOf(110, 110));
    await page.mouse.move(e.x, e.y);
    await waitForTooltip(page, (l) => l[0] === "(110, 110)" && l[1] === "Nobody has placed this pixel yet", "an empty pixel");
    await page.mouse.move(500, 690); // over the dock, off the canvas
    await page.dispatchEvent("#board", "pointerleave", { pointerType: "mouse" });
    await page.waitForFunction(() => document.getElementById("pixel-info").hidden, null, { timeout: 2000 });
    await context.close();
  });

  it("the heatmap button lays the recent activity over the canvas", async () => {
    const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
    const page = await openPage(context, server.url, { x: 100, y: 100, zoom: 3 });
    const palette = await page.evaluate(() => window.__place.info.palette);
    await waitForCanvasRgb(page, 150, 60, hexRgb(palette[12]));
    await page.click("#heatmap-button");
    await page.waitForFunction(() => window.__place.heatmap, null, { timeout: 5000 });
    const note = await page.textContent("#heatmap-note");
    assert.match(note, /^Activity, last 60 min: \d+ placements$/);
    assert.equal(await page.getAttribute("#heatmap-button", "aria-pressed"), "true");
    // The painted pixel is tinted now; an untouched one far away is not.
    const [tinted] = await page.evaluate(() => {
      const s = window.__place.screenOf(150, 60);
      const board = document.getElementById("board");
      const dpr = board.width / board.clientWidth;
      return [board.getContext("2d").getImageData(Math.floor(s.x * dpr), Math.floor(s.y * dpr), 1, 1).data.slice(0, 3)];
    });
    assert.notDeepEqual([...Object.values(tinted)], hexRgb(palette[12]));
    await waitForCanvasRgb(page, 10, 190, hexRgb(palette[0]));
    assert.ok(await page.isVisible("#heatmap-legend"));
    console.log("screenshot:", await screenshot(page, "history-heatmap.png"));

    // The window: 5 minutes to 24 hours.
    await page.selectOption("#heatmap-window", "1440");
    await page.waitForFunction(() => /^Activity, last 24 h: \d+ placements$/.test(document.getElementById("heatmap-note").textContent));
    await page.selectOption("#heatmap-window", "5");
    await page.waitForFunction(() => /^Activity, last 5 min: \d+ placements$/.test(document.getElementById("heatmap-note").textContent));

    // Turned down, the real colour shows through: within a few levels of the pixel's own.
    await page.fill("#heatmap-opacity", "0.1");
    await page.dispatchEvent("#heatmap-opacity", "input");
    await page.waitForFunction(
      ([rgb]) => {
        const s = window.__place.screenOf(150, 60);
        const board = document.getElementById("board");
        const dpr = board.width / board.clientWidth;
        const d = board.getContext("2d").getImageData(Math.floor(s.x * dpr), Math.floor(s.y * dpr), 1, 1).data;
        return [0, 1, 2].every((i) => Math.abs(d[i] - rgb[i]) < 40);
      },
      [hexRgb(palette[12])],
    );
    console.log("screenshot:", await screenshot(page, "history-heatmap-faint.png"));
    await page.fill("#heatmap-opacity", "0.6");
    await page.dispatchEvent("#heatmap-opacity", "input");
    await page.selectOption("#heatmap-window", "60");
    await page.click("#heatmap-button");
    await page.waitForFunction(() => !window.__place.heatmap, null, { timeout: 2000 });
    await waitForCanvasRgb(page, 150, 60, hexRgb(palette[12]));
    await context.close();
  });

  it("on a phone the heatmap's panel leaves the top bar's buttons free", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 });
    const page = await openPage(context, server.url, { x: 150, y: 60, zoom: 4 });
    await page.tap("#heatmap-button");
    await page.waitForFunction(() => window.__place.heatmap, null, { timeout: 5000 });
    const panel = await page.locator("#heatmap-panel").boundingBox();
    for (const id of ["#timelapse-button", "#template-button", "#heatmap-button"]) {
      const b = await page.locator(id).boundingBox();
      assert.ok(b.y + b.height <= panel.y, `${id} is above the panel`);
    }
    console.log("screenshot:", await screenshot(page, "history-heatmap-phone.png"));
    await page.tap("#timelapse-button");
    assert.equal(await page.evaluate(() => window.__place.timelapse.open), true);
    await context.close();
  });

  it("a long press on a phone shows the pixel's history and places nothing", async () => {
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 });
    const page = await openPage(context, server.url, { x: 100, y: 100, zoom: 16 });
    const palette = await page.evaluate(() => window.__place.info.palette);
    await waitForCanvasRgb(page, 100, 100, hexRgb(palette[9]));
    const s = await page.evaluate(() => window.__place.screenOf(100, 100));
    const cdp = await context.newCDPSession(page);
    await cdp.send("Input.dispatchTouchEvent", { type: "touchStart", touchPoints: [{ x: s.x, y: s.y, id: 0 }] });
    const lines = await waitForTooltip(page, (l) => l.length >= 2, "a placement", 3000);
    assert.match(lines[1], new RegExp(`^${otherName} · `));
    await cdp.send("Input.dispatchTouchEvent", { type: "touchEnd", touchPoints: [] });
    await sleep(100);
    assert.equal(await page.isVisible("#confirm"), false, "a long press selects nothing");
    assert.equal(await page.evaluate(() => window.__place.nextPlacementIn), 0, "and places nothing");
    console.log("screenshot:", await screenshot(page, "history-long-press.png"));
    await context.close();
  });
});
