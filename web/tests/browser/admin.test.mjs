// The admin panel as an administrator meets it: a guest sees no "Admin" button;
// the administrator signs in, picks a vandal's pixel, sees their placements
// outlined, rolls them back (the canvas shows the colours from before), bans
// them (their next placement is refused), changes the cooldown, reads the audit
// log, and signs out (the button goes).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { hexRgb, jsonClient, launchBrowser, openAdminPanel, openPage, screenshot, serverCanvas, startServer, waitForCanvasRgb } from "./helpers.mjs";

const ADMIN = { name: "mod_alice", password: "a long admin password" };

/** The RGB of the page's canvas at a screen point (CSS px). */
const screenRgb = (page, sx, sy) =>
  page.evaluate(
    ([sx, sy]) => {
      const board = document.getElementById("board");
      const dpr = board.width / board.clientWidth;
      const d = board.getContext("2d").getImageData(Math.floor(sx * dpr), Math.floor(sy * dpr), 1, 1).data;
      return [d[0], d[1], d[2]];
    },
    [sx, sy],
  );

describe("admin panel", () => {
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

  it("is not shown to a guest", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await openPage(context, server.url, { x: 20, y: 20, zoom: 16 });
    await page.waitForFunction(() => document.getElementById("account-button").textContent === "Sign in / Register");
    await page.waitForTimeout(300); // /auth/me has answered by now
    assert.ok(await page.isHidden("#admin-button"));
    assert.ok(await page.isHidden("#admin-panel"));
    const status = await page.evaluate(() => fetch("/api/v1/admin/settings").then((r) => r.status));
    assert.equal(status, 403, "and the API refuses a guest");
    await context.close();
  });

  it("finds a vandal by pixel, outlines, rolls back and bans them", async () => {
    const before = await jsonClient(server.url);
    const vandal = await jsonClient(server.url);
    const vandalMe = await fetch(`${server.url}/api/v1/auth/me`, { headers: { Cookie: vandal.cookie } }).then((r) => r.json());
    const palette = before.welcome.canvasInfo.palette;
    assert.equal((await before.place(20, 20, 2)).type, "success");
    for (const [x, y] of [[20, 20], [21, 20], [23, 22]]) assert.equal((await vandal.place(x, y, 5)).type, "success");

    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await openPage(context, server.url, { x: 21, y: 21, zoom: 16 });
    await waitForCanvasRgb(page, 23, 22, hexRgb(palette[5]));

    // Sign in through the account dialog: the "Admin" button appears.
    await openAdminPanel(page, ADMIN);
    await page.waitForFunction(() => document.getElementById("admin-cooldown").value === "0");

    // Pick mode: a click on a pixel asks who placed it instead of painting.
    await page.click("#admin-pick");
    const s = await page.evaluate(() => window.__place.screenOf(21, 20));
    await page.mouse.click(s.x, s.y);
    await page.waitForSelector("#admin-user:not([hidden])");
    assert.match(await page.textContent("#admin-user-title"), new RegExp(vandalMe.username));
    assert.equal(await page.evaluate(() => window.__place.colorAt(21, 20)), 5, "picking did not paint");
    await page.waitForFunction(() => window.__place.highlighted === 3);
    assert.equal(await page.locator("#admin-placements li").count(), 3);
    // The outline is drawn just outside the pixel (zoom 16: its edge is 8 px from the centre).
    await page.waitForTimeout(100);
    const lone = await page.evaluate(() => window.__place.screenOf(23, 22));
    assert.deepEqual(await screenRgb(page, lone.x + 11, lone.y), hexRgb("#ff2bd6"));
    assert.deepEqual(await screenRgb(page, lone.x, lone.y), hexRgb(palette[5]), "the pixel itself still shows");
    console.log("screenshot:", await screenshot(page, "admin-user.png"));

    // Roll back all of them: each pixel shows the colour it had before.
    await page.selectOption("#admin-since", "0");
    await page.click("#admin-rollback");
    await page.click("#admin-confirm-yes");
    await waitForCanvasRgb(page, 20, 20, hexRgb(palette[2]));
    await waitForCanvasRgb(page, 21, 20, hexRgb(palette[0]));
    await waitForCanvasRgb(page, 23, 22, hexRgb(palette[0]));
    // The canvas image is rebuilt at most once a second: ask until it shows the rollback.
    const width = before.welcome.canvasInfo.width;
    const rolledBack = (canvas) => [canvas[20 * width + 20], canvas[20 * width + 21], canvas[22 * width + 23]];
    let canvas = await serverCanvas(server.url);
    for (let i = 0; i < 30 && rolledBack(canvas).join() !== "2,0,0"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      canvas = await serverCanvas(server.url);
    }
    assert.deepEqual(rolledBack(canvas), [2, 0, 0]);
    await page.waitForFunction(() => window.__place.highlighted === 0);
    assert.equal(await page.locator("#admin-placements li.reverted").count(), 3);

    // Find them by name instead, and ban them: their next placement is refused.
    await page.fill("#admin-name", vandalMe.username.slice(0, 10));
    await page.click("#admin-find button[type=submit]");
    await page.click(`#admin-found button:has-text("${vandalMe.username}")`);
    await page.waitForFunction(() => document.getElementById("admin-ban").textContent === "Ban");
    await page.click("#admin-ban");
    await page.click("#admin-confirm-yes");
    await page.waitForFunction(() => document.getElementById("admin-ban").textContent === "Unban");
    const refused = await vandal.place(30, 30, 5);
    assert.equal(refused.type, "error");
    assert.equal(refused.code, "BANNED");
    assert.equal((await before.place(30, 30, 3)).type, "success", "others still paint");

    // The cooldown, and the audit log lists what was done.
    await page.fill("#admin-cooldown", "7");
    await page.click("#admin-settings button[type=submit]");
    await before.next((m) => m.type === "cooldown" && m.cooldown === 7);
    await page.waitForFunction(() => document.getElementById("admin-audit").textContent.includes("ban-user"));
    const audit = await page.textContent("#admin-audit");
    for (const action of ["rollback", "ban-user"]) assert.ok(audit.includes(action), `${action} in ${audit}`);
    console.log("screenshot:", await screenshot(page, "admin-panel.png"));

    // A bad cooldown is explained and not sent.
    await page.fill("#admin-cooldown", "99999");
    await page.click("#admin-settings button[type=submit]");
    await page.waitForSelector("#admin-error:not([hidden])");
    assert.match(await page.textContent("#admin-error"), /at most 3600/);

    // Signed out: no button, no panel.
    await page.click("#account-button");
    await page.waitForSelector("#admin-button[hidden]", { state: "attached" });
    assert.ok(await page.isHidden("#admin-panel"));
    assert.equal(await page.evaluate(() => window.__place.highlighted), 0);
    before.close();
    vandal.close();
    await context.close();
  });
});
