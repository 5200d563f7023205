import { describe, expect, it } from "vitest";
import { agoText, heatColor, heatLayer, heatmapText, windowText, PixelHistoryCache, placementText, type Heatmap, type HistoryItem } from "../../src/history";

const item = (over: Partial<HistoryItem> = {}): HistoryItem => ({
  x: 1,
  y: 2,
  color: 5,
  userId: "17",
  username: "alice",
  placedAt: 1_000_000,
  reverted: false,
  restore: false,
  ...over,
});

describe("pixel history texts", () => {
  it("says how long ago, coarser the older", () => {
    const now = 10_000_000;
    expect(agoText(now - 1000, now)).toBe("just now");
    expect(agoText(now + 5000, now)).toBe("just now");
    expect(agoText(now - 42_000, now)).toBe("42 s ago");
    expect(agoText(now - 5 * 60_000 - 10_000, now)).toBe("5 min ago");
    expect(agoText(now - 3 * 3_600_000, now)).toBe("3 h ago");
    expect(agoText(now - 50 * 3_600_000, now)).toBe("2 d ago");
  });

  it("names who placed it and marks rollbacks and restores", () => {
    const now = 1_000_000 + 120_000;
    expect(placementText(item(), now)).toBe("alice · 2 min ago");
    expect(placementText(item({ reverted: true }), now)).toBe("alice · 2 min ago (rolled back)");
    expect(placementText(item({ restore: true, username: "root" }), now)).toBe("root · 2 min ago (moderator restore)");
    expect(placementText(item({ username: null }), now)).toBe("#17 · 2 min ago");
  });

  it("names a guest's own placements 'you', and nobody else's", () => {
    const now = 1_000_000 + 120_000;
    const guest = { userId: "17", isGuest: true };
    expect(placementText(item({ username: "guest-4f2a" }), now, guest)).toBe("you · 2 min ago");
    expect(placementText(item({ username: "guest-4f2a", reverted: true }), now, guest)).toBe("you · 2 min ago (rolled back)");
    expect(placementText(item({ userId: "18", username: "guest-77" }), now, guest)).toBe("guest-77 · 2 min ago");
    // A signed-in player sees their own name, as others do.
    expect(placementText(item(), now, { userId: "17", isGuest: false })).toBe("alice · 2 min ago");
    expect(placementText(item(), now, null)).toBe("alice · 2 min ago");
  });
});

describe("the per-pixel cache", () => {
  it("keeps a pixel's history until it changes or grows old", () => {
    const c = new PixelHistoryCache(8, 1000);
    c.set(1, 2, [item()], 0);
    expect(c.get(1, 2, 500)).toEqual([item()]);
    expect(c.get(2, 1, 500)).toBeUndefined();
    expect(c.invalidate(1, 2)).toBe(true);
    expect(c.get(1, 2, 500)).toBeUndefined();
    expect(c.invalidate(1, 2)).toBe(false);
    c.set(1, 2, [], 0);
    expect(c.get(1, 2, 1001)).toBeUndefined();
    expect(c.size).toBe(0);
  });

  it("forgets the least recently used pixel beyond its capacity", () => {
    const c = new PixelHistoryCache(2, 1000);
    c.set(0, 0, [], 0);
    c.set(1, 0, [], 0);
    c.get(0, 0, 1); // (0,0) is now the most recently used
    c.set(2, 0, [], 2);
    expect(c.size).toBe(2);
    expect(c.get(1, 0, 3)).toBeUndefined();
    expect(c.get(0, 0, 3)).toEqual([]);
    expect(c.get(2, 0, 3)).toEqual([]);
  });
});

describe("the heatmap layer", () => {
  const map: Heatmap = {
    minutes: 60,
    cellSize: 8,
    columns: 3,
    rows: 2,
    total: 11,
    max: 10,
    truncated: false,
    cells: [
      [0, 0, 1],
      [2, 1, 10],
      [7, 7, 3], // outside: ignored
    ],
  };

  it("colours busier cells redder and more opaque, empty ones not at all", () => {
    expect(heatColor(0, 10)).toEqual([0, 0, 0, 0]);
    const low = heatColor(1, 10);
    const high = heatColor(10, 10);
    expect(high[1]).toBeLessThan(low[1]);
    expect(high[3]).toBeGreaterThan(low[3]);
    expect(high).toEqual([255, 0, 0, 204]);
  });

  it("makes one RGBA pixel per cell", () => {
    const layer = heatLayer(map);
    expect(layer.rgba.length).toBe(3 * 2 * 4);
    expect([...layer.rgba.slice(0, 4)]).toEqual(heatColor(1, 10));
    expect([...layer.rgba.slice((1 * 3 + 2) * 4, (1 * 3 + 2) * 4 + 4)]).toEqual(heatColor(10, 10));
    expect(layer.rgba[(0 * 3 + 1) * 4 + 3]).toBe(0);
  });

  it("sums the window up", () => {
    expect(heatmapText(map)).toBe("Activity, last 60 min: 11 placements");
    expect(heatmapText({ ...map, total: 1_234_567, truncated: true })).toBe("Activity, last 60 min: 1,234,567 placements (the newest only)");
  });
});

describe("heatmap windows", () => {
  it("names the window in minutes or hours", () => {
    expect(windowText(5)).toBe("5 min");
    expect(windowText(60)).toBe("60 min");
    expect(windowText(360)).toBe("6 h");
    expect(windowText(1440)).toBe("24 h");
  });
});
