import { describe, expect, it } from "vitest";
import { damageText, expectedAt, isDamage, mapToPalette, nearestColor, nextWrong, progressText, templateIdOf, type Template } from "../../src/templates";

const PALETTE = ["#ffffff", "#222222", "#e50000", "#0000ea"];

function template(cells: number[], width: number): Template {
  return { id: "0123456789abcdef", x: 10, y: 20, width, height: cells.length / width, cells: Int16Array.from(cells), total: cells.filter((c) => c >= 0).length };
}

describe("palette mapping", () => {
  it("keeps exact colours, takes the nearest for others, leaves out the transparent", () => {
    const rgba = [0xe5, 0, 0, 255, 0xe0, 0x08, 0x02, 255, 10, 10, 240, 200, 0, 0, 0, 10];
    expect([...mapToPalette(rgba, PALETTE)]).toEqual([2, 2, 3, -1]);
  });

  it("nearest colour", () => {
    expect(nearestColor(250, 250, 250, [[0, 0, 0], [255, 255, 255]])).toBe(1);
  });
});

describe("a template over the canvas", () => {
  const t = template([1, -1, 2, 3], 2);

  it("wants a colour where it has one", () => {
    expect(expectedAt(t, 10, 20)).toBe(1);
    expect(expectedAt(t, 11, 20)).toBe(-1);
    expect(expectedAt(t, 9, 20)).toBe(-1);
    expect(expectedAt(t, 11, 21)).toBe(3);
  });

  it("damage is a right pixel turned wrong, nothing else", () => {
    expect(isDamage(t, 10, 20, 1, 0)).toBe(true);
    expect(isDamage(t, 10, 20, 0, 2)).toBe(false); // was wrong already
    expect(isDamage(t, 10, 20, 0, 1)).toBe(false); // repaired
    expect(isDamage(t, 11, 20, 5, 6)).toBe(false); // not part of it
    expect(isDamage(t, 10, 20, undefined, 0)).toBe(false); // unknown before
  });

  it("the next wrong pixel is the nearest one, skipping the selected and the unknown", () => {
    const canvas = new Map([["10,20", 1], ["10,21", 0], ["11,21", 0]]);
    const truth = (x: number, y: number) => canvas.get(`${x},${y}`);
    expect(nextWrong(t, truth, 12, 22)).toEqual({ x: 11, y: 21, color: 3 });
    expect(nextWrong(t, truth, 12, 22, { x: 11, y: 21 })).toEqual({ x: 10, y: 21, color: 2 });
    canvas.set("10,21", 2);
    canvas.set("11,21", 3);
    expect(nextWrong(t, truth, 12, 22)).toBeNull();
  });
});

describe("texts and links", () => {
  it("says what happened", () => {
    expect(damageText(1, 4, 5)).toBe("Your template was damaged at (4, 5)");
    expect(damageText(3, 4, 5)).toBe("3 pixels of your template were overwritten, near (4, 5)");
    expect(progressText(1234, 5000)).toBe("1,234 / 5,000 right (24%)");
  });

  it("reads a template id from the URL, nothing else", () => {
    expect(templateIdOf("?template=0123456789abcdef")).toBe("0123456789abcdef");
    expect(templateIdOf("?template=../../x")).toBeNull();
    expect(templateIdOf("")).toBeNull();
  });
});
