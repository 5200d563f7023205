import { describe, expect, it } from "vitest";
import { withMine, type HistoryItem } from "../../src/history";
import { keyCommand } from "../../src/input";
import { minimapSize, minimapToCanvas } from "../../src/minimap";
import { colorChoice, darkest, initialColor } from "../../src/prefs";

const PALETTE = ["#ffffff", "#e4e4e4", "#888888", "#222222", "#ffa7d1", "#e50000", "#0000ea"];

describe("hotkeys", () => {
  it("digits pick colours, Shift adds ten, brackets step, ? and Esc", () => {
    expect(keyCommand({ key: "1", code: "Digit1", shiftKey: false })).toEqual({ color: 0 });
    expect(keyCommand({ key: "0", code: "Digit0", shiftKey: false })).toEqual({ color: 9 });
    expect(keyCommand({ key: "!", code: "Digit1", shiftKey: true })).toEqual({ color: 10 });
    expect(keyCommand({ key: "]", code: "BracketRight", shiftKey: false })).toEqual({ colorStep: 1 });
    expect(keyCommand({ key: "?", code: "Slash", shiftKey: true })).toBe("help");
    expect(keyCommand({ key: "Escape", code: "Escape", shiftKey: false })).toBe("escape");
    expect(keyCommand({ key: "x", code: "KeyX", shiftKey: false })).toBeNull();
  });
});

describe("the first colour", () => {
  it("is black, not a saturated blue", () => {
    expect(darkest(PALETTE)).toBe(3);
  });

  it("is the remembered one when this palette still has it", () => {
    expect(initialColor(PALETTE, colorChoice(5, PALETTE))).toBe(5);
    expect(initialColor(PALETTE, "5:#00ff00")).toBe(3);
    expect(initialColor(PALETTE, "99:#e50000")).toBe(3);
    expect(initialColor(PALETTE, null)).toBe(3);
  });
});

describe("minimap", () => {
  it("maps a click to the canvas, inside it", () => {
    expect(minimapToCanvas(45, 135, 180, 180, 2000, 2000)).toEqual({ x: 500, y: 1500 });
    expect(minimapToCanvas(-5, 999, 180, 180, 2000, 2000)).toEqual({ x: 0, y: 1999 });
  });

  it("keeps the canvas's aspect", () => {
    expect(minimapSize(2000, 1000, 180)).toEqual({ width: 180, height: 90 });
  });
});

describe("own placements in the tooltip", () => {
  const item = (userId: string, color: number, placedAt: number): HistoryItem => ({ x: 1, y: 1, color, userId, username: null, placedAt, reverted: false, restore: false });

  it("come first until the server's history has them", () => {
    const mine = item("7", 3, 10_000);
    expect(withMine([item("8", 1, 5_000)], mine)).toEqual([mine, item("8", 1, 5_000)]);
    expect(withMine([item("7", 3, 10_050), item("8", 1, 5_000)], mine)).toEqual([item("7", 3, 10_050), item("8", 1, 5_000)]);
  });
});
