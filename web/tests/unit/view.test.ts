import { describe, expect, it } from "vitest";
import { wheelFactor } from "../../src/input";
import {
  canvasToScreen,
  clampView,
  defaultView,
  formatHash,
  MAX_ZOOM,
  minZoom,
  panBy,
  parseHash,
  pixelAt,
  rangeCount,
  screenToCanvas,
  viewFromHash,
  visibleTiles,
  zoomAt,
} from "../../src/view";

const size = { width: 1000, height: 600 };

describe("view maths", () => {
  it("screen and canvas coordinates are inverse", () => {
    const v = { cx: 100.5, cy: 200.5, zoom: 8 };
    const c = screenToCanvas(v, size, 123, 456);
    const s = canvasToScreen(v, size, c.x, c.y);
    expect(s.x).toBeCloseTo(123);
    expect(s.y).toBeCloseTo(456);
    expect(canvasToScreen(v, size, 100.5, 200.5)).toEqual({ x: 500, y: 300 });
  });

  it("pixelAt floors and rejects points outside the canvas", () => {
    const v = { cx: 0.5, cy: 0.5, zoom: 10 };
    expect(pixelAt(v, size, 500, 300, 2000, 2000)).toEqual({ x: 0, y: 0 });
    expect(pixelAt(v, size, 506, 311, 2000, 2000)).toEqual({ x: 1, y: 1 });
    expect(pixelAt(v, size, 494, 300, 2000, 2000)).toBeNull();
  });

  it("zoomAt keeps the point under the pointer still", () => {
    const v = { cx: 1000, cy: 1000, zoom: 2 };
    const before = screenToCanvas(v, size, 100, 50);
    const z = zoomAt(v, size, 100, 50, 16);
    expect(z.zoom).toBe(16);
    const after = screenToCanvas(z, size, 100, 50);
    expect(after.x).toBeCloseTo(before.x);
    expect(after.y).toBeCloseTo(before.y);
  });

  it("panBy moves the content with the pointer", () => {
    const v = panBy({ cx: 100, cy: 100, zoom: 4 }, 40, -20);
    expect(v).toEqual({ cx: 90, cy: 105, zoom: 4 });
  });

  it("clampView bounds zoom and centre", () => {
    expect(clampView({ cx: -50, cy: 5000, zoom: 1000 }, size, 2000, 2000)).toEqual({ cx: 0, cy: 2000, zoom: MAX_ZOOM });
    const small = clampView({ cx: 1, cy: 1, zoom: 0.0001 }, size, 2000, 2000);
    expect(small.zoom).toBe(minZoom(size, 2000, 2000));
    // At the smallest zoom the whole canvas is on screen.
    expect(2000 * small.zoom).toBeLessThanOrEqual(size.height);
    expect(MAX_ZOOM).toBeGreaterThanOrEqual(40);
  });

  it("clampView keeps the whole canvas on screen when it fits", () => {
    const z = minZoom(size, 2000, 2000);
    const v = clampView({ cx: 2000, cy: 2000, zoom: z }, size, 2000, 2000);
    const topLeft = canvasToScreen(v, size, 0, 0);
    const bottomRight = canvasToScreen(v, size, 2000, 2000);
    expect(topLeft.x).toBeGreaterThanOrEqual(-1e-9);
    expect(topLeft.y).toBeGreaterThanOrEqual(-1e-9);
    expect(bottomRight.x).toBeLessThanOrEqual(size.width + 1e-9);
    expect(bottomRight.y).toBeLessThanOrEqual(size.height + 1e-9);
    expect(v.cx).toBeCloseTo(1000);
    expect(v.cy).toBeCloseTo(1000);
  });

  it("clampView is continuous in zoom (no jumps while zooming out)", () => {
    let prev = clampView({ cx: 0, cy: 0, zoom: 4 }, size, 2000, 2000);
    for (let zoom = 4; zoom > 0.2; zoom *= 0.98) {
      const v = clampView({ cx: prev.cx, cy: prev.cy, zoom }, size, 2000, 2000);
      expect(Math.abs(v.cx - prev.cx) * v.zoom).toBeLessThan(25);
      prev = v;
    }
  });

  it("visibleTiles covers the viewport, with margin, clamped", () => {
    const v = { cx: 1000, cy: 1000, zoom: 4 }; // 250 x 150 canvas px on screen
    const r = visibleTiles(v, size, 2000, 2000, 64);
    expect(r).toEqual({ tx0: Math.floor(875 / 64), ty0: Math.floor(925 / 64), tx1: Math.ceil(1125 / 64) - 1, ty1: Math.ceil(1075 / 64) - 1 });
    const m = visibleTiles(v, size, 2000, 2000, 64, 1);
    expect(m).toEqual({ tx0: r.tx0 - 1, ty0: r.ty0 - 1, tx1: r.tx1 + 1, ty1: r.ty1 + 1 });
    const corner = visibleTiles({ cx: 0, cy: 0, zoom: 4 }, size, 2000, 2000, 64, 1);
    expect(corner.tx0).toBe(0);
    expect(corner.ty0).toBe(0);
    const whole = visibleTiles({ cx: 1000, cy: 1000, zoom: 0.25 }, size, 2000, 2000, 64);
    expect(whole).toEqual({ tx0: 0, ty0: 0, tx1: 31, ty1: 31 });
    expect(rangeCount(whole)).toBe(1024);
  });

  it("visibleTiles is empty off the canvas", () => {
    expect(rangeCount(visibleTiles({ cx: -500, cy: 0, zoom: 4 }, size, 2000, 2000, 64))).toBe(0);
  });

  it("cropped edge tiles count", () => {
    // 2000 px = 31.25 tiles: the last tile is 31.
    const r = visibleTiles({ cx: 1990, cy: 1990, zoom: 40 }, size, 2000, 2000, 64);
    expect(r.tx1).toBe(31);
  });
});

describe("URL hash", () => {
  it("parses x, y, zoom", () => {
    expect(parseHash("#x=12&y=34&zoom=8")).toEqual({ x: 12, y: 34, zoom: 8 });
    expect(parseHash("#zoom=2.5&y=1&x=0")).toEqual({ x: 0, y: 1, zoom: 2.5 });
    expect(parseHash("#x=1&y=2")).toEqual({ x: 1, y: 2 });
    expect(parseHash("#x=1")).toBeNull();
    expect(parseHash("")).toBeNull();
    expect(parseHash("#x=a&y=2")).toBeNull();
    expect(parseHash("#x=1&y=2&zoom=-3")).toEqual({ x: 1, y: 2 });
  });

  it("puts pixel (X,Y) at the window centre", () => {
    const v = viewFromHash("#x=100&y=50&zoom=20", size, 2000, 2000)!;
    expect(pixelAt(v, size, size.width / 2, size.height / 2, 2000, 2000)).toEqual({ x: 100, y: 50 });
    expect(v.zoom).toBe(20);
  });

  it("round-trips through formatHash", () => {
    const v = { cx: 100.5, cy: 50.5, zoom: 12.3456 };
    expect(formatHash(v)).toBe("#x=100&y=50&zoom=12.35");
    const back = viewFromHash(formatHash(v), size, 2000, 2000)!;
    expect(back.cx).toBe(100.5);
    expect(back.zoom).toBeCloseTo(12.35);
  });

  it("default view: canvas centre with pixels visible", () => {
    const v = defaultView(size, 2000, 2000);
    expect(v.cx).toBe(1000);
    expect(v.zoom).toBeGreaterThanOrEqual(2);
  });
});

describe("wheel", () => {
  it("scrolling up zooms in, down zooms out, pages and lines count more, huge deltas are capped", () => {
    expect(wheelFactor(-100, 0, false)).toBeGreaterThan(1);
    expect(wheelFactor(100, 0, false)).toBeLessThan(1);
    expect(wheelFactor(3, 1, false)).toBeCloseTo(wheelFactor(48, 0, false));
    expect(wheelFactor(-10, 0, true)).toBeGreaterThan(wheelFactor(-10, 0, false));
    expect(wheelFactor(-1e6, 0, false)).toBe(wheelFactor(-300, 0, false));
  });
});
