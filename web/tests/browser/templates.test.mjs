// Templates as players use them: a desktop player makes one from an image
// (mapped to the palette), sees the overlay, its progress and the next wrong
// pixel, paints it; another client's placement over a right pixel fires a
// damage alert ("Go there", and the title and a notification while the tab
// is in the background); the share link opens the same template on a phone.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { deflateSync } from "node:zlib";
import { jsonClient, launchBrowser, openPage, screenshot, sleep, startServer } from "./helpers.mjs";

/** A PNG (RGBA, 8 bits) of `width` x `height` from a function giving [r, g, b, a] per pixel. */
function png(width, height, pixel) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 255] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(type, 4, "ascii");
    data.copy(out, 8);
    out.writeUInt32BE(crc(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 6, 0, 0, 0], 8);
  const raw = Buffer.alloc(height * (1 + width * 4));
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) raw.set(pixel(x, y), y * (1 + width * 4) + 1 + x * 4);
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr), chunk("IDAT", deflateSync(raw)), chunk("IEND", Buffer.alloc(0))]);
}

const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

describe("templates", () => {
  let server;
  let browser;

  before(async () => {
    server = await startServer({ cooldownSecs: 0 });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  it("make, overlay, progress, next wrong pixel, damage alerts, share link", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.grantPermissions(["clipboard-read", "clipboard-write", "notifications"], { origin: server.url });
    const page = await openPage(context, server.url, { x: 104, y: 102, zoom: 16 });
    const palette = await page.evaluate(() => window.__place.info.palette);
    // 8x4: a red heart-ish band over blue, a transparent corner, colours a little off the palette.
    const red = rgb(palette[5]);
    const blue = rgb(palette[13]);
    const image = png(8, 4, (x, y) => (x === 0 && y === 0 ? [0, 0, 0, 0] : y < 2 ? [red[0] - 3, red[1] + 2, red[2], 255] : [blue[0], blue[1] + 4, blue[2], 255]));
    await page.click("#template-button");
    await page.waitForSelector("#template-panel:not([hidden])");
    await page.setInputFiles("#template-file", { name: "band.png", mimeType: "image/png", buffer: image });
    await page.fill("#template-x", "100");
    await page.fill("#template-y", "100");
    await page.click("#template-add");
    await page.waitForFunction(() => window.__place.template.id !== null && window.__place.template.shown);
    const id = await page.evaluate(() => window.__place.template.id);
    assert.match(await page.evaluate(() => location.search), new RegExp(`template=${id}`));
    await page.waitForFunction(() => /^0 \/ 31 right \(0%\)$/.test(document.getElementById("template-progress").textContent));
    console.log("screenshot:", await screenshot(page, "template-dots-desktop.png"));
    await page.evaluate(() => window.__place.setView(104, 102, 4));
    await sleep(100);
    console.log("screenshot:", await screenshot(page, "template-translucent-desktop.png"));

    // Next wrong pixel: selected, centred, its colour picked; a click there places it.
    await page.click("#template-next");
    const sel = await page.evaluate(() => window.__place.selectedPixel);
    assert.ok(sel.x >= 100 && sel.x < 108 && sel.y >= 100 && sel.y < 104, JSON.stringify(sel));
    assert.equal(await page.evaluate(() => window.__place.selectedColor), sel.y < 102 ? 5 : 13);
    const s = await page.evaluate(([x, y]) => window.__place.screenOf(x, y), [sel.x, sel.y]);
    await page.mouse.click(s.x, s.y);
    await page.waitForFunction(() => /^1 \/ 31 right/.test(document.getElementById("template-progress").textContent), null, { timeout: 8000 });

    // Another player overwrites that right pixel: an alert, and Go there brings it back in view.
    const vandal = await jsonClient(server.url);
    await page.evaluate(() => window.__place.setView(300, 300, 8));
    assert.equal((await vandal.place(sel.x, sel.y, 0)).type, "success");
    await page.waitForSelector("#alert:not([hidden])");
    assert.equal(await page.textContent("#alert-text"), `Your template was damaged at (${sel.x}, ${sel.y})`);
    console.log("screenshot:", await screenshot(page, "template-alert-desktop.png"));
    await page.click("#alert-go");
    const v = await page.evaluate(() => window.__place.view);
    assert.equal(Math.floor(v.cx), sel.x);
    assert.equal(Math.floor(v.cy), sel.y);

    // In the background: the title says so and a notification is shown.
    await page.click("#template-notify");
    await page.evaluate(() => {
      window.__notes = [];
      const N = window.Notification;
      window.Notification = class extends N {
        constructor(title, options) {
          super(title, options);
          window.__notes.push(options.body);
        }
      };
      Object.defineProperty(document, "hidden", { get: () => true, configurable: true });
      document.dispatchEvent(new Event("visibilitychange"));
    });
    const mine = await jsonClient(server.url);
    assert.equal((await mine.place(101, 103, 13)).type, "success");
    await sleep(300);
    assert.equal((await vandal.place(101, 103, 2)).type, "success");
    await page.waitForFunction(() => document.title === "Template damaged at (101, 103) · place", null, { timeout: 5000 });
    await page.waitForFunction(() => window.__notes.length === 1);
    assert.equal(await page.evaluate(() => window.__notes[0]), "Your template was damaged at (101, 103)");
    vandal.close();
    mine.close();

    // The link opens the same template on a phone.
    await page.click("#template-share");
    const link = await page.evaluate(() => navigator.clipboard.readText());
    assert.match(link, new RegExp(`\\?template=${id}#x=104&y=102&zoom=8$`));
    await context.close();

    const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true, deviceScaleFactor: 2 });
    const p2 = await phone.newPage();
    await p2.goto(link);
    await p2.waitForFunction((id) => window.__place?.template.id === id && window.__place.template.shown, id);
    await p2.click("#template-button");
    await p2.waitForFunction(() => /^0 \/ 31 right/.test(document.getElementById("template-progress").textContent), null, { timeout: 8000 });
    await sleep(200);
    console.log("screenshot:", await screenshot(p2, "template-phone.png"));
    await phone.close();
  });
});
