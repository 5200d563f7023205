// The placement-spike alarm as an administrator meets it: a crowd of guests paints one cell at
// once; the alarm appears in the open admin panel by itself (with the automatic slow-down the
// operator chose), the cell is outlined as slowed for players, and "Lift the slow-down" ends it
// in one click.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { jsonClient, launchBrowser, openAdminPanel, openPage, screenshot, startServer } from "./helpers.mjs";

const ADMIN = { name: "mod_sam", password: "alarm admin password" };

describe("spike alarm", () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer({
      admins: [ADMIN],
      extraArgs: [
        // Every bot is 127.0.0.1: the per-network budget would stop the crowd.
        "--placements-per-address-per-minute", "0",
        "--spike-min-rate", "4",
        "--spike-factor", "3",
        "--spike-slow-minutes", "5",
        "--spike-slow-cooldown-secs", "45",
        // Forty guests at once: a cheap proof of work each.
        "--guest-pow-bits", "4",
      ],
    });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("appears in the panel with its slow-down, which is lifted in one click", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await openPage(context, server.url, { x: 100, y: 100, zoom: 4 });
    await openAdminPanel(page, ADMIN);
    await page.waitForFunction(() => document.getElementById("admin-alarms").textContent === "None");

    const crowd = await Promise.all(Array.from({ length: 40 }, () => jsonClient(server.url)));
    const answers = await Promise.all(crowd.map((c, i) => c.place(64 + (i % 32), 64 + Math.floor(i / 32), 6)));
    assert.ok(answers.every((a) => a.type === "success"), JSON.stringify(answers.find((a) => a.type !== "success")));

    // No click needed: the panel's refresh shows it.
    await page.waitForSelector("#admin-alarms li.alarm", { timeout: 12_000 });
    const text = await page.textContent("#admin-alarms li.alarm");
    assert.match(text, /\/s in \(64,64\)-\(127,127\), usually [\d.]+\/s · slowed down/);
    await page.evaluate(() => window.__place.refreshRegions());
    await page.waitForFunction(() => window.__place.regions.some((r) => r.mode === "slow" && r.x === 64 && r.width === 64));
    await page.waitForFunction(() => window.__place.status === "live");
    console.log("screenshot:", await screenshot(page, "admin-spike-alarm.png"));
    const again = await crowd[0].place(70, 70, 2);
    assert.equal(again.code, "RATE_LIMITED", JSON.stringify(again));

    await page.click("#admin-alarms li.alarm button");
    await page.waitForFunction(() => /slow-down over/.test(document.getElementById("admin-alarms").textContent));
    await page.waitForFunction(() => window.__place.regions.length === 0);
    assert.equal((await crowd[0].place(70, 70, 2)).type, "success", "lifted");
    await page.waitForFunction(() => /the server raised a spike alarm/.test(document.getElementById("admin-audit").textContent));
    for (const c of crowd) c.close();
    await context.close();
  });
});
