// The admin panel never hides its buttons: at 1280x800, 1920x1080 and on a 390x844 phone, the
// confirm step of every destructive action (roll back or reset a rectangle, reset the canvas,
// roll back a user, ban a user) is on screen whole, with both of its buttons; "Cancel" changes
// nothing. On the phone the panel is a sheet and its own toggle and the Timelapse button stay
// reachable above it. The audit log reads as sentences with local times, the JSON behind a
// disclosure, and the figures show a new cooldown at once.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jsonClient, launchBrowser, openAdminPanel, openPage, screenshot, startServer } from "./helpers.mjs";

const ADMIN = { name: "mod_cleo", password: "confirm admin password" };

const SIZES = [
  { name: "1280x800", viewport: { width: 1280, height: 800 } },
  { name: "1920x1080", viewport: { width: 1920, height: 1080 } },
  { name: "390x844", viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 },
];

/** Asserts the element's whole box lies inside the viewport and nothing covers its centre. */
async function assertOnScreen(page, selector, what) {
  const box = await page.locator(selector).boundingBox();
  const { width, height } = page.viewportSize();
  assert.ok(box, `${what}: ${selector} is laid out`);
  assert.ok(
    box.x >= 0 && box.y >= 0 && box.x + box.width <= width && box.y + box.height <= height,
    `${what}: ${selector} at ${JSON.stringify(box)} leaves the ${width}x${height} viewport`,
  );
  const onTop = await page.evaluate(
    ([sel, x, y]) => {
      const hit = document.elementFromPoint(x, y);
      return hit !== null && (hit === document.querySelector(sel) || document.querySelector(sel).contains(hit));
    },
    [selector, box.x + box.width / 2, box.y + box.height / 2],
  );
  assert.ok(onTop, `${what}: ${selector} is covered`);
}

/** Clicks (or taps) the page's canvas on pixel (x, y). */
async function pointAt(page, x, y, touch) {
  const s = await page.evaluate(([x, y]) => window.__place.screenOf(x, y), [x, y]);
  if (touch) await page.touchscreen.tap(s.x, s.y);
  else await page.mouse.click(s.x, s.y);
}

describe("admin panel: confirms on screen at every size", () => {
  let server;
  let browser;
  let vandal;
  let vandalName;

  before(async () => {
    server = await startServer({ admins: [ADMIN] });
    browser = await launchBrowser();
    vandal = await jsonClient(server.url);
    for (const [x, y] of [[20, 20], [21, 20], [22, 21]]) assert.equal((await vandal.place(x, y, 6)).type, "success");
    vandalName = (await fetch(`${server.url}/api/v1/auth/me`, { headers: { Cookie: vandal.cookie } }).then((r) => r.json())).username;
  });

  after(async () => {
    vandal?.close();
    await browser?.close();
    await server?.stop();
  });

  for (const size of SIZES) {
    it(`every destructive action asks first, on screen, at ${size.name}`, async () => {
      const touch = size.hasTouch === true;
      const context = await browser.newContext(size);
      // The rectangle's pixels sit in the upper part of the screen, above a phone's sheet.
      const page = await openPage(context, server.url, { x: 21, y: 40, zoom: 10 });
      await openAdminPanel(page, ADMIN);
      await page.waitForFunction(() => window.__place.status === "live");
      await assertOnScreen(page, "#admin-button", "the panel's toggle");
      await assertOnScreen(page, "#timelapse-button", "the Timelapse button");

      await page.click("#admin-select");
      await pointAt(page, 20, 20, touch);
      await page.waitForFunction(() => window.__place.selection?.width === 1);
      await pointAt(page, 22, 21, touch);
      await page.waitForFunction(() => window.__place.selection?.width === 3);

      await page.fill("#admin-name", vandalName);
      await page.click("#admin-find button[type=submit]");
      await page.click("#admin-found li:first-child button");
      await page.waitForSelector("#admin-user:not([hidden])");

      const actions = [
        ["#admin-area-rollback", /Roll back every placement in \(20, 20\) to \(22, 21\)/],
        ["#admin-area-reset", /Reset \(20, 20\) to \(22, 21\)/],
        ["#admin-reset-all", /WHOLE canvas/],
        ["#admin-rollback", new RegExp(`Roll back every placement of ${vandalName}`)],
        ["#admin-ban", new RegExp(`Ban ${vandalName}\\?`)],
      ];
      for (const [button, text] of actions) {
        await page.click(button);
        await page.waitForSelector("#admin-confirm:not([hidden])");
        assert.match(await page.textContent("#admin-confirm-text"), text);
        for (const part of ["#admin-confirm .card", "#admin-confirm-yes", "#admin-confirm-no"]) await assertOnScreen(page, part, `${button} at ${size.name}`);
        if (button === "#admin-reset-all" || button === "#admin-ban") {
          console.log("screenshot:", await screenshot(page, `admin-confirm-${button.slice(7)}-${size.name}.png`));
        }
        await page.click("#admin-confirm-no");
        await page.waitForSelector("#admin-confirm", { state: "hidden" });
      }
      assert.equal(await page.textContent("#admin-ban"), "Ban", "a cancelled ban bans nobody");
      const refusedNothing = await vandal.place(30, 30, 2);
      assert.equal(refusedNothing.type, "success", "the vandal still places: nothing was done");

      // The toggle above the sheet closes the panel.
      await assertOnScreen(page, "#admin-button", "the panel's toggle with the panel open");
      console.log("screenshot:", await screenshot(page, `admin-panel-${size.name}.png`));
      await page.click("#admin-button");
      await page.waitForSelector("#admin-panel", { state: "hidden" });
      await context.close();
    });
  }

  it("the audit log reads as sentences, and the figures follow a new cooldown at once", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await openPage(context, server.url, { x: 21, y: 40, zoom: 10 });
    await openAdminPanel(page, ADMIN);
    await page.fill("#admin-name", vandalName);
    await page.click("#admin-find button[type=submit]");
    await page.click("#admin-found li:first-child button");
    await page.click("#admin-ban");
    await page.click("#admin-confirm-yes");
    await page.waitForFunction(() => document.getElementById("admin-ban").textContent === "Unban");
    assert.equal((await vandal.place(31, 31, 2)).code, "BANNED");
    await page.fill("#admin-cooldown", "17");
    await page.click("#admin-settings button[type=submit]");
    // No waiting for the figures' 5 s refresh: they show it as soon as the change is made.
    await page.waitForFunction(() => document.getElementById("admin-stat-cooldown").textContent === "17 s", null, { timeout: 2000 });
    await page.waitForFunction(() => document.querySelector("#admin-audit li p")?.textContent.includes("set the cooldown to 17 s"));
    const lines = await page.$$eval("#admin-audit li p", (ps) => ps.map((p) => p.textContent));
    assert.match(lines[0], /^\d\d:\d\d:\d\d mod_cleo set the cooldown to 17 s \(was 0 s\)$/);
    assert.equal(lines[1].replace(/^\d\d:\d\d:\d\d /, ""), `mod_cleo banned ${vandalName}`);
    assert.equal(await page.isVisible("#admin-audit li:first-child details pre"), false, "the JSON is folded away");
    await page.click("#admin-audit li:first-child details summary");
    assert.match(await page.textContent("#admin-audit li:first-child details pre"), /"cooldownSeconds": 17/);
    await page.waitForFunction(() => window.__place.status === "live");
    console.log("screenshot:", await screenshot(page, "admin-audit-sentences.png"));
    await context.close();
  });
});
