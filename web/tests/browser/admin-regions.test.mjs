// Protected regions as an administrator and a player meet them: the administrator selects a
// rectangle on the canvas and locks it from the admin panel; the player's page outlines it,
// says why in the pixel tooltip, and a placement there is refused with the reason shown; the
// administrator removes it in one click and the player paints there again.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { hexRgb, launchBrowser, openAdminPanel, openPage, screenshot, startServer, waitForCanvasRgb } from "./helpers.mjs";

const ADMIN = { name: "mod_rita", password: "region admin password" };

/** Clicks the page's canvas on pixel (x, y). */
async function clickPixel(page, x, y) {
  const s = await page.evaluate(([x, y]) => window.__place.screenOf(x, y), [x, y]);
  await page.mouse.click(s.x, s.y);
}

describe("protected regions", () => {
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

  it("a locked region drawn in the panel refuses a player's placement with the reason shown", async () => {
    const adminContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const admin = await openPage(adminContext, server.url, { x: 64, y: 64, zoom: 12 });
    await openAdminPanel(admin, ADMIN);
    await admin.click("#admin-select");
    await clickPixel(admin, 60, 60);
    await admin.waitForFunction(() => window.__place.selection?.width === 1);
    await clickPixel(admin, 69, 67);
    await admin.waitForFunction(() => window.__place.selection?.width === 10);
    await admin.selectOption("#admin-region-mode", "locked");
    await admin.click("#admin-region-add");
    await admin.waitForFunction(() => /locked \(60, 60\) to \(69, 67\)/.test(document.getElementById("admin-regions").textContent));
    await admin.waitForFunction(() => window.__place.regions.length === 1);
    // Signing in renewed the page's socket: the screenshot waits for it to be live again.
    await admin.waitForFunction(() => window.__place.status === "live");
    console.log("screenshot:", await screenshot(admin, "regions-admin-1280.png"));

    const playerContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const player = await openPage(playerContext, server.url, { x: 64, y: 64, zoom: 12 });
    await player.waitForFunction(() => window.__place.regions.some((r) => r.mode === "locked" && r.x === 60 && r.width === 10));
    const palette = await player.evaluate(() => window.__place.info.palette);

    // The tooltip of a pixel inside says why.
    const inside = await player.evaluate(() => window.__place.screenOf(64, 63));
    await player.mouse.move(inside.x, inside.y);
    await player.waitForSelector("#pixel-info:not([hidden]) .restricted");
    assert.match(await player.textContent("#pixel-info .restricted"), /Locked by the moderators/);
    console.log("screenshot:", await screenshot(player, "regions-tooltip-1280.png"));

    // A placement inside is refused, the reason shown, and the pixel stays as it was.
    await player.click('#palette button[data-index="5"]');
    await clickPixel(player, 64, 63);
    await player.waitForFunction(() => !document.getElementById("toast").hidden);
    assert.match(await player.textContent("#toast"), /locked by the moderators/i);
    await player.waitForFunction(() => window.__place.colorAt(64, 63) === 0);
    console.log("screenshot:", await screenshot(player, "regions-refused-1280.png"));

    // On a phone too: a tap and "Place" inside is refused with the reason shown.
    const phoneContext = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 });
    const phone = await openPage(phoneContext, server.url, { x: 64, y: 64, zoom: 12 });
    await phone.waitForFunction(() => window.__place.regions.length === 1);
    const tap = await phone.evaluate(() => window.__place.screenOf(62, 62));
    await phone.touchscreen.tap(tap.x, tap.y);
    await phone.waitForSelector("#confirm:not([hidden])");
    await phone.tap("#confirm");
    await phone.waitForFunction(() => /locked by the moderators/i.test(document.getElementById("toast").textContent));
    console.log("screenshot:", await screenshot(phone, "regions-refused-390x844.png"));
    await phoneContext.close();

    // Outside it the player paints.
    await clickPixel(player, 72, 63);
    await waitForCanvasRgb(player, 72, 63, hexRgb(palette[5]));

    // Removed in one click: the outline goes and the player paints inside.
    await admin.click("#admin-regions li.region button");
    await admin.waitForFunction(() => document.getElementById("admin-regions").textContent === "None");
    await player.evaluate(() => window.__place.refreshRegions());
    await player.waitForFunction(() => window.__place.regions.length === 0);
    await clickPixel(player, 64, 63);
    await waitForCanvasRgb(player, 64, 63, hexRgb(palette[5]));
    await adminContext.close();
    await playerContext.close();
  });
});
