// Accounts as a player meets them: a guest paints, registers from the account
// dialog, reloads and is still signed in with its cooldown running, signs out
// and becomes a fresh guest, then signs back in (after a wrong password).

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { launchBrowser, openPage, screenshot, startServer, waitReady } from "./helpers.mjs";

const me = (page) => page.evaluate(() => fetch("/api/v1/auth/me").then((r) => r.json()));

async function submit(page, username, password, button) {
  await page.click("#account-button");
  await page.waitForSelector("#account-dialog[open]");
  await page.fill("#account-username", username);
  await page.fill("#account-password", password);
  await page.click(button);
}

describe("accounts", () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer({ cooldownSecs: 60 });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("a guest registers, reloads and is still signed in, signs out and back in", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await openPage(context, server.url, { x: 50, y: 50, zoom: 16 });
    const guest = await me(page);
    assert.equal(guest.isGuest, true);
    assert.equal(await page.textContent("#account-button"), "Sign in / Register");
    assert.ok(await page.isHidden("#account-name"));

    // Paint as a guest: the cooldown starts.
    const s = await page.evaluate(() => window.__place.screenOf(52, 51));
    await page.mouse.click(s.x, s.y);
    await page.waitForFunction(() => window.__place.nextPlacementIn > 30_000);

    // A name that breaks the rules is explained in the dialog, and nothing is sent.
    await submit(page, "x", "long enough", "#account-register");
    await page.waitForSelector("#account-error:not([hidden])");
    assert.match(await page.textContent("#account-error"), /3 to 32/);
    await page.fill("#account-username", "painter_1");
    await page.fill("#account-password", "a long password");
    assert.ok(await page.isHidden("#account-error"), "editing clears the complaint");
    console.log("screenshot:", await screenshot(page, "account-dialog.png"));
    await page.click("#account-register");
    await page.waitForFunction(() => document.getElementById("account-name").textContent === "painter_1");
    assert.equal(await page.textContent("#account-button"), "Sign out");
    const registered = await me(page);
    assert.equal(registered.userId, guest.userId, "the guest keeps its id");
    assert.equal(registered.isGuest, false);

    // After a reload: still signed in, and the guest's cooldown still runs.
    await page.reload();
    await waitReady(page);
    await page.waitForFunction(() => document.getElementById("account-name").textContent === "painter_1");
    assert.ok((await page.evaluate(() => window.__place.nextPlacementIn)) > 30_000);
    await page.waitForFunction(() => document.getElementById("cooldown").textContent.startsWith("Next pixel in"));
    console.log("screenshot:", await screenshot(page, "account-signed-in.png"));

    // Sign out: a new guest, with no cooldown.
    await page.click("#account-button");
    await page.waitForFunction(() => document.getElementById("account-button").textContent === "Sign in / Register");
    assert.ok(await page.isHidden("#account-name"));
    await page.waitForFunction(() => window.__place.status === "live" && window.__place.nextPlacementIn === 0);
    const after = await me(page);
    assert.equal(after.isGuest, true);
    assert.notEqual(after.userId, guest.userId);

    // Back in, after a wrong password.
    await submit(page, "painter_1", "not the password", "#account-login");
    await page.waitForFunction(() => document.getElementById("account-error").textContent === "Wrong username or password");
    await page.fill("#account-password", "a long password");
    await page.click("#account-login");
    await page.waitForFunction(() => document.getElementById("account-name").textContent === "painter_1");
    assert.ok(await page.isHidden("#account-dialog"));
    await page.waitForFunction(() => window.__place.status === "live" && window.__place.nextPlacementIn > 30_000);
    await context.close();
  });
});
