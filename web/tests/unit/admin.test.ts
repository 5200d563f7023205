import { describe, expect, it } from "vitest";
import { adminErrorText, auditText, cooldownProblem, highlightPixels, rollbackSince, timeText, type Placement } from "../../src/admin";

const placement = (x: number, y: number, reverted = false): Placement => ({
  x,
  y,
  color: 5,
  userId: "17",
  username: "guest-1",
  placedAt: 0,
  actionId: null,
  reverted,
});

describe("admin panel rules", () => {
  it("outlines each pixel once, leaving rolled-back placements out", () => {
    expect(highlightPixels([placement(1, 2), placement(3, 4), placement(1, 2), placement(5, 6, true)])).toEqual([
      { x: 1, y: 2 },
      { x: 3, y: 4 },
    ]);
    expect(highlightPixels([])).toEqual([]);
  });

  it("a rollback window becomes the since the server wants", () => {
    expect(rollbackSince(10, 1_000_000)).toBe(400_000);
    expect(rollbackSince(0, 1_000_000)).toBe(0);
  });

  it("the cooldown is 0 to 3600 whole seconds", () => {
    for (const ok of ["0", "5", " 60 ", "3600"]) expect(cooldownProblem(ok)).toBeNull();
    for (const bad of ["", "-1", "1.5", "abc"]) expect(cooldownProblem(bad)).toMatch(/whole number/);
    expect(cooldownProblem("3601")).toMatch(/at most 3600/);
  });

  it("times show the clock today and the date before", () => {
    const now = new Date(2026, 10, 24, 15, 0, 0).getTime();
    expect(timeText(new Date(2026, 10, 24, 9, 5, 7).getTime(), now)).toBe("09:05:07");
    expect(timeText(new Date(2026, 10, 20, 9, 5, 7).getTime(), now)).toBe("2026-11-20 09:05");
  });

  it("an audit entry reads as one line", () => {
    const e = { id: "1", actorId: "2", actorName: "alice", action: "ban-user", details: { userId: "17" }, createdAt: 0 };
    expect(auditText(e)).toBe("alice ban-user userId=17");
    expect(auditText({ ...e, action: "reset-canvas", details: { rect: { x: 0 } } })).toBe('alice reset-canvas rect={"x":0}');
    expect(auditText({ ...e, details: null })).toBe("alice ban-user");
  });

  it("refusals say why", () => {
    expect(adminErrorText(401, "UNAUTHORIZED", undefined)).toMatch(/sign in/);
    expect(adminErrorText(403, "FORBIDDEN", "x")).toMatch(/not an administrator/);
    expect(adminErrorText(404, "NOT_FOUND", undefined)).toBe("No such user");
    expect(adminErrorText(400, "BAD_REQUEST", "the pixel is outside the canvas")).toBe("the pixel is outside the canvas");
    expect(adminErrorText(503, "UNAVAILABLE", undefined)).toMatch(/unavailable/);
  });
});
