// No dead ends: a visitor over the per-address guest limit watches the live
// canvas read-only and can sign in to play; Enter in the account dialog signs
// in; a lost connection shows a banner with its retry countdown and turns the
// palette off; a ban is a lasting notice; a first visit logs no console error.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { hexRgb, jsonClient, launchBrowser, openPage, screenshot, startServer, waitForCanvasRgb } from "./helpers.mjs";

const admin = { name: "warden", password: "a warden's password" };
const VIEWPORTS = {
  desktop: { viewport: { width: 1920, height: 1080 } },
  phone: { viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 },
};

/** Console errors and page errors of a page, collected from its first request. */
function watchErrors(page) {
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(String(e)));
  return errors;
}

describe("over the guest limit", () => {
  let server;
  let browser;

  before(async () => {
    // One guest a minute from an address: the painter below takes it.
    server = await startServer({ cooldownSecs: 60, guestRatePerMinute: 1, admins: [admin] });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("over the guest limit: the live canvas read-only, and signing in plays", async () => {
    const painter = await jsonClient(server.url);
    const palette = painter.welcome.canvasInfo.palette;
    assert.equal((await painter.place(100, 100, 5)).type, "success");
    for (const [name, options] of Object.entries(VIEWPORTS)) {
      const context = await browser.newContext(options);
      const page = await context.newPage();
      await page.goto(`${server.url}/#x=100&y=100&zoom=16`);
      await page.waitForSelector("#notice.limited");
      assert.match(await page.textContent("#notice-text"), /you are watching the live canvas, you can place in \d:\d\d/);
      assert.equal(await page.textContent("#notice-action"), "Sign in to play now");
      await waitForCanvasRgb(page, 100, 100, hexRgb(palette[5]));
      assert.equal(await page.textContent("#cooldown"), "Watching");
      assert.equal(await page.isDisabled("#palette button >> nth=0"), true);
      console.log("screenshot:", await screenshot(page, `deadend-limited-${name}.png`));
      await context.close();
    }
    painter.close();

    // Sign in from the notice: the page is live and can paint.
    const context = await browser.newContext(VIEWPORTS.desktop);
    const page = await context.newPage();
    await page.goto(`${server.url}/#x=100&y=100&zoom=16`);
    await page.click("#notice-action");
    await page.waitForSelector("#account-dialog[open]");
    await page.fill("#account-username", admin.name);
    await page.fill("#account-password", admin.password);
    await page.press("#account-password", "Enter");
    await page.waitForFunction(() => window.__place.status === "live" && window.__place.mode === "tiles");
    assert.ok(await page.isHidden("#notice"));
    assert.equal(await page.textContent("#cooldown"), "Ready");
    await context.close();
  });
});

describe("dead ends", () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer({ cooldownSecs: 60, admins: [admin] });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("Enter signs in a returning player; Register is its own button", async () => {
    const context = await browser.newContext(VIEWPORTS.desktop);
    const page = await openPage(context, server.url, { x: 10, y: 10, zoom: 8 });
    await page.click("#account-button");
    await page.fill("#account-username", admin.name);
    await page.fill("#account-password", "a wrong password");
    await page.press("#account-password", "Enter");
    await page.waitForFunction(() => document.getElementById("account-error").textContent === "Wrong username or password");
    await page.fill("#account-password", admin.password);
    await page.press("#account-username", "Enter");
    await page.waitForFunction((name) => document.getElementById("account-name").textContent === name, admin.name);
    await context.close();
  });

  it("a lost connection: a banner with its countdown, the palette off, back by itself", async () => {
    const context = await browser.newContext(VIEWPORTS.desktop);
    const page = await openPage(context, server.url, { x: 10, y: 10, zoom: 8 });
    await page.evaluate(() => window.__place.dropConnection(4000));
    await page.waitForSelector("#notice.offline");
    assert.match(await page.textContent("#notice-text"), /Connection lost: retrying in \d s/);
    assert.equal(await page.textContent("#cooldown"), "Offline");
    assert.equal(await page.isDisabled("#palette button >> nth=0"), true);
    console.log("screenshot:", await screenshot(page, "deadend-offline-desktop.png"));
    await page.waitForFunction(() => window.__place.status === "live", null, { timeout: 10_000 });
    await page.waitForSelector("#notice", { state: "hidden" });
    assert.equal(await page.isDisabled("#palette button >> nth=0"), false);
    await context.close();
  });

  it("a banned player gets a lasting notice", async () => {
    const context = await browser.newContext(VIEWPORTS.phone);
    const page = await openPage(context, server.url, { x: 30, y: 30, zoom: 16 });
    const me = await page.evaluate(() => fetch("/api/v1/auth/me").then((r) => r.json()));
    // The warden bans this player through the API.
    const login = await fetch(`${server.url}/api/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: admin.name, password: admin.password }),
    });
    const cookie = /place_session=[0-9a-f]+/.exec(login.headers.get("set-cookie"))[0];
    const ban = await fetch(`${server.url}/api/v1/admin/ban-user`, {
      method: "POST",
      headers: { "content-type": "application/json", cookie },
      body: JSON.stringify({ userId: me.userId }),
    });
    assert.equal(ban.status, 200, await ban.text());
    const s = await page.evaluate(() => window.__place.screenOf(31, 31));
    await page.touchscreen.tap(s.x, s.y);
    await page.tap("#confirm");
    await page.waitForSelector("#notice.banned");
    assert.equal(await page.textContent("#notice-text"), "You are banned from placing pixels.");
    await page.waitForTimeout(4000); // longer than any toast
    assert.ok(await page.isVisible("#notice.banned"));
    assert.equal(await page.textContent("#cooldown"), "Banned");
    console.log("screenshot:", await screenshot(page, "deadend-banned-phone.png"));
    await context.close();
  });
});

describe("a first visit", () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("logs no console error", async () => {
    for (const options of Object.values(VIEWPORTS)) {
      const context = await browser.newContext(options);
      const page = await context.newPage();
      const errors = watchErrors(page);
      await page.goto(`${server.url}/`);
      await page.waitForFunction(() => window.__place?.status === "live" && window.__place.visiblePending === 0);
      await page.waitForTimeout(500);
      assert.deepEqual(errors, []);
      await context.close();
    }
  });
});
