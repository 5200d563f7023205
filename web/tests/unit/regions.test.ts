import { describe, expect, it } from "vitest";
import { regionsAt, regionText, type Region } from "../../src/regions";

const region = (over: Partial<Region>): Region => ({
  id: "1",
  x: 10,
  y: 10,
  width: 5,
  height: 5,
  mode: "locked",
  cooldownSeconds: null,
  until: null,
  automatic: false,
  createdAt: 0,
  reason: "Locked by the moderators: only they may place here",
  ...over,
});

describe("regions", () => {
  it("holds inside its rectangle only, until it ends", () => {
    const regions = [region({}), region({ id: "2", x: 12, until: 1000 })];
    expect(regionsAt(regions, 10, 10, 0).map((r) => r.id)).toEqual(["1"]);
    expect(regionsAt(regions, 14, 14, 0).map((r) => r.id)).toEqual(["1", "2"]);
    expect(regionsAt(regions, 15, 14, 0).map((r) => r.id)).toEqual(["2"]);
    expect(regionsAt(regions, 14, 14, 1000).map((r) => r.id)).toEqual(["1"]);
    expect(regionsAt(regions, 9, 10, 0)).toEqual([]);
  });

  it("says why, and how long is left", () => {
    expect(regionText(region({}), 0)).toBe("Locked by the moderators: only they may place here");
    expect(regionText(region({ until: 90_000 }), 0)).toMatch(/\(2 min left\)$/);
    expect(regionText(region({ until: 3 * 3_600_000 }), 0)).toMatch(/\(3 h left\)$/);
  });
});
