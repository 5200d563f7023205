// The admin panel's figures, area tools and audit pages as an administrator
// meets them: the figures fill in and follow new placements while the panel is
// open; a rectangle selected on the canvas is rolled back over a time window,
// then reset, each only after "Confirm" (a "Cancel" changes nothing), and the
// whole canvas is reset; the audit log is read page by page.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { hexRgb, jsonClient, launchBrowser, openAdminPanel, openPage, screenshot, serverCanvas, sleep, startServer, waitForCanvasRgb } from "./helpers.mjs";

const ADMIN = { name: "mod_bob", password: "another admin password" };

/** The administrator's cookie, for requests from the test itself. */
async function adminCookie(url) {
  const res = await fetch(`${url}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: ADMIN.name, password: ADMIN.password }),
  });
  assert.equal(res.status, 200);
  return /place_session=[0-9a-f]+/.exec(res.headers.get("set-cookie"))[0];
}

/** The server's colours of `pixels` once they equal `expected` (its canvas image is rebuilt at most every second), or the last seen after 5 s. */
async function serverPixels(url, width, pixels, expected) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const canvas = await serverCanvas(url);
    const seen = pixels.map(([x, y]) => canvas[y * width + x]);
    if (JSON.stringify(seen) === JSON.stringify(expected) || Date.now() > deadline) return seen;
    await sleep(200);
  }
}

/** Clicks the page's canvas on pixel (x, y). */
async function clickPixel(page, x, y) {
  const s = await page.evaluate(([x, y]) => window.__place.screenOf(x, y), [x, y]);
  await page.mouse.click(s.x, s.y);
}

describe("admin panel: figures, areas and the audit log", () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer({ admins: [ADMIN] });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("shows the figures and refreshes them while open", async () => {
    const painters = await Promise.all([jsonClient(server.url), jsonClient(server.url)]);
    for (const [i, p] of painters.entries()) assert.equal((await p.place(100 + i, 100, 3)).type, "success");
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await openPage(context, server.url, { x: 100, y: 100, zoom: 8 });
    await openAdminPanel(page, ADMIN);
    await page.waitForFunction(() => document.getElementById("admin-stat-rate").textContent === "2");
    // The two painters and the page itself are online.
    assert.ok(Number(await page.textContent("#admin-stat-online")) >= 2);
    assert.equal(await page.textContent("#admin-stat-banned"), "0");
    assert.equal(await page.textContent("#admin-stat-cooldown"), "0 s");
    assert.equal(await page.locator("#admin-top li").count(), 2);
    assert.match(await page.textContent("#admin-top"), /guest-.*: 1/);
    assert.match(await page.textContent("#admin-shards"), /^serve ok · 1024 tiles · queue \d+ · write [\d.]+ ms$/);
    // A third placement shows up by itself within a refresh.
    assert.equal((await painters[0].place(102, 100, 4)).type, "success");
    await page.waitForFunction(() => document.getElementById("admin-stat-rate").textContent === "3", null, { timeout: 8000 });
    assert.match(await page.textContent("#admin-top li:first-child"), /: 2$/);
    console.log("screenshot:", await screenshot(page, "admin-stats.png"));
    for (const p of painters) p.close();
    await context.close();
  });

  it("rolls back a selected rectangle, resets it and the canvas, each after a confirm", async () => {
    const earlier = await jsonClient(server.url);
    const vandal = await jsonClient(server.url);
    const palette = earlier.welcome.canvasInfo.palette;
    const width = earlier.welcome.canvasInfo.width;
    // Before the raid: (40,40) was 2. The raid paints 6 pixels, one of them outside the rectangle.
    assert.equal((await earlier.place(40, 40, 2)).type, "success");
    await sleep(1500);
    const raidStart = Date.now();
    for (const [x, y] of [[40, 40], [41, 40], [42, 41], [43, 43], [44, 44], [50, 40]]) assert.equal((await vandal.place(x, y, 6)).type, "success");

    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await openPage(context, server.url, { x: 44, y: 42, zoom: 16 });
    await waitForCanvasRgb(page, 44, 44, hexRgb(palette[6]));
    await openAdminPanel(page, ADMIN);
    assert.ok(await page.isDisabled("#admin-area-rollback"), "nothing to roll back before a selection");

    // Two clicks on the canvas frame the rectangle (40,40)-(44,44); neither paints.
    await page.click("#admin-select");
    await clickPixel(page, 44, 44);
    await page.waitForFunction(() => window.__place.selection?.width === 1);
    await clickPixel(page, 40, 40);
    await page.waitForFunction(() => window.__place.selection?.width === 5);
    assert.deepEqual(await page.evaluate(() => window.__place.selection), { x: 40, y: 40, width: 5, height: 5 });
    assert.equal(await page.textContent("#admin-area-text"), "(40, 40) to (44, 44): 5 × 5 px");
    assert.equal(await page.evaluate(() => window.__place.colorAt(44, 44)), 6, "the corners did not paint");
    assert.equal(await page.getAttribute("#admin-select", "aria-pressed"), "false");

    // Roll back the last 10 minutes of the area: cancelled first, then confirmed. The page's
    // clock is set so that those 10 minutes start between the earlier placement and the raid.
    await page.clock.setFixedTime(raidStart - 700 + 10 * 60_000);
    await page.selectOption("#admin-area-since", "10");
    await page.click("#admin-area-rollback");
    await page.waitForSelector("#admin-confirm:not([hidden])");
    assert.match(await page.textContent("#admin-confirm-text"), /Roll back every placement in \(40, 40\) to \(44, 44\).*last 10 min/);
    console.log("screenshot:", await screenshot(page, "admin-area-confirm.png"));
    await page.click("#admin-confirm-no");
    assert.ok(await page.isHidden("#admin-confirm"));
    await sleep(1200); // longer than the server keeps a built canvas image
    assert.equal((await serverCanvas(server.url))[44 * width + 44], 6, "a cancelled rollback does nothing");
    await page.click("#admin-area-rollback");
    await page.click("#admin-confirm-yes");
    await waitForCanvasRgb(page, 40, 40, hexRgb(palette[2]));
    await waitForCanvasRgb(page, 44, 44, hexRgb(palette[0]));
    const raided = [[40, 40], [41, 40], [42, 41], [43, 43], [44, 44], [50, 40]];
    assert.deepEqual(
      await serverPixels(server.url, width, raided, [2, 0, 0, 0, 0, 6]),
      [2, 0, 0, 0, 0, 6],
      "inside: the colours from before the raid; outside: untouched",
    );
    await page.waitForFunction(() => document.getElementById("admin-audit").textContent.includes("rollback"));

    // Reset the area: (40,40) goes back to 0 too; (50,40) outside stays.
    await page.click("#admin-area-reset");
    assert.match(await page.textContent("#admin-confirm-text"), /Reset \(40, 40\) to \(44, 44\)/);
    await page.click("#admin-confirm-yes");
    await waitForCanvasRgb(page, 40, 40, hexRgb(palette[0]));
    assert.deepEqual(await serverPixels(server.url, width, [[40, 40], [50, 40]], [0, 6]), [0, 6]);

    // Reset the whole canvas.
    await page.click("#admin-reset-all");
    assert.match(await page.textContent("#admin-confirm-text"), /WHOLE canvas/);
    await page.click("#admin-confirm-yes");
    await page.waitForFunction(() => document.getElementById("admin-audit").textContent.split("reset-canvas").length === 3);
    await waitForCanvasRgb(page, 50, 40, hexRgb(palette[0]));
    await serverPixels(server.url, width, [[50, 40]], [0]);
    assert.ok((await serverCanvas(server.url)).every((c) => c === 0), "every pixel is 0");
    console.log("screenshot:", await screenshot(page, "admin-area-reset.png"));

    // Closing the panel takes the frame away.
    await page.click("#admin-close");
    assert.equal(await page.evaluate(() => window.__place.selection), null);
    earlier.close();
    vandal.close();
    await context.close();
  });

  it("pages through the audit log with older and newer", async () => {
    const cookie = await adminCookie(server.url);
    // 45 cooldown changes, 1 s to 45 s: the newest first, 20 to a page.
    for (let s = 1; s <= 45; s++) {
      const res = await fetch(`${server.url}/api/v1/admin/settings`, {
        method: "PUT",
        headers: { "content-type": "application/json", cookie },
        body: JSON.stringify({ cooldownSeconds: s }),
      });
      assert.equal(res.status, 200);
    }
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await openPage(context, server.url, { x: 10, y: 10, zoom: 8 });
    await openAdminPanel(page, ADMIN);
    const seconds = () =>
      page.$$eval("#admin-audit li", (lis) => lis.map((li) => /set the cooldown to (\d+) s/.exec(li.textContent)?.[1]).filter(Boolean).map(Number));
    await page.waitForFunction(() => document.getElementById("admin-audit").textContent.includes("set the cooldown to 45 s"));
    assert.deepEqual(await seconds(), Array.from({ length: 20 }, (_, i) => 45 - i));
    assert.ok(await page.isDisabled("#admin-audit-newer"));
    assert.equal(await page.textContent("#admin-audit-page"), "Page 1");

    await page.click("#admin-audit-older");
    await page.waitForFunction(() => document.getElementById("admin-audit-page").textContent === "Page 2");
    assert.deepEqual(await seconds(), Array.from({ length: 20 }, (_, i) => 25 - i));
    await page.click("#admin-audit-older");
    await page.waitForFunction(() => document.getElementById("admin-audit-page").textContent === "Page 3");
    const last = await seconds();
    assert.deepEqual(last.slice(0, 5), [5, 4, 3, 2, 1], "then the earlier actions of this server");
    assert.ok(await page.isDisabled("#admin-audit-older"), "the oldest page");
    console.log("screenshot:", await screenshot(page, "admin-audit-pages.png"));

    await page.click("#admin-audit-newer");
    await page.waitForFunction(() => document.getElementById("admin-audit-page").textContent === "Page 2");
    assert.deepEqual(await seconds(), Array.from({ length: 20 }, (_, i) => 25 - i));
    await page.click("#admin-audit-newer");
    await page.waitForFunction(() => document.getElementById("admin-audit-page").textContent === "Page 1");
    assert.equal((await seconds())[0], 45);
    await context.close();
  });
});
