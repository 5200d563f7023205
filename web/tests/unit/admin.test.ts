import { describe, expect, it } from "vitest";
import {
  adminErrorText,
  AuditPager,
  auditActor,
  auditSentence,
  cooldownProblem,
  highlightPixels,
  outcomeText,
  rectFromCorners,
  rectText,
  rollbackSince,
  shardText,
  timeText,
  type Placement,
} from "../../src/admin";

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

  it("an audit entry reads as a sentence by its actor", () => {
    const now = new Date(2026, 10, 24, 19, 0, 0).getTime();
    const at = (h: number, m: number) => new Date(2026, 10, 24, h, m, 30).getTime();
    const e = { id: "1", actorId: "2", actorName: "alice", action: "ban-user", details: { userId: "17", username: "griefer1" }, createdAt: 0 };
    expect(auditActor(e)).toBe("alice");
    expect(auditActor({ ...e, actorId: "0", actorName: null })).toBe("the server");
    expect(auditActor({ ...e, actorName: null })).toBe("deleted user #2");
    expect(auditSentence(e, now)).toBe("banned griefer1");
    const area = { rect: { x: 990, y: 960, width: 51, height: 51 }, from: at(18, 2), to: at(18, 5), reverted: 37 };
    expect(auditSentence({ ...e, action: "rollback", details: { ...area, userId: undefined } }, now)).toBe(
      "rolled back 37 placements in (990,960)-(1040,1010) between 18:02 and 18:05",
    );
    expect(auditSentence({ ...e, action: "rollback", details: { userId: "17", username: "griefer1", since: at(18, 2), reverted: 1 } }, now)).toBe(
      "rolled back 1 placement of griefer1 since 18:02",
    );
    expect(auditSentence({ ...e, action: "rollback", details: { ...area, from: 0, to: 9e15 } }, now)).toBe("rolled back 37 placements in (990,960)-(1040,1010)");
    expect(auditSentence({ ...e, action: "settings", details: { cooldownSeconds: 2, previousSeconds: 5 } }, now)).toBe("set the cooldown to 2 s (was 5 s)");
    expect(auditSentence({ ...e, action: "reset-canvas", details: { rect: { x: 0, y: 0, width: 10, height: 10 }, reverted: 3 } }, now)).toBe(
      "reset (0,0)-(9,9) to colour 0 (3 placements rolled back)",
    );
    const region = { x: 0, y: 0, width: 40, height: 30, mode: "slow", cooldownSeconds: 60, until: at(18, 30) };
    expect(auditSentence({ ...e, action: "region-add", details: region }, now)).toBe("slowed (0,0)-(39,29) down to one pixel every 60 s until 18:30");
    expect(auditSentence({ ...e, action: "region-remove", details: { ...region, mode: "locked" } }, now)).toBe("lifted the locked protection of (0,0)-(39,29)");
    expect(auditSentence({ ...e, action: "something-new", details: null }, now)).toBe("something-new");
  });

  it("refusals say why", () => {
    expect(adminErrorText(401, "UNAUTHORIZED", undefined)).toMatch(/sign in/);
    expect(adminErrorText(403, "FORBIDDEN", "x")).toMatch(/not an administrator/);
    expect(adminErrorText(404, "NOT_FOUND", undefined)).toBe("No such user");
    expect(adminErrorText(400, "BAD_REQUEST", "the pixel is outside the canvas")).toBe("the pixel is outside the canvas");
    expect(adminErrorText(503, "UNAVAILABLE", undefined)).toMatch(/unavailable/);
  });

  it("two corners make a rectangle holding both, in any order", () => {
    expect(rectFromCorners({ x: 10, y: 20 }, { x: 29, y: 34 })).toEqual({ x: 10, y: 20, width: 20, height: 15 });
    expect(rectFromCorners({ x: 29, y: 34 }, { x: 10, y: 20 })).toEqual({ x: 10, y: 20, width: 20, height: 15 });
    expect(rectFromCorners({ x: 5, y: 40 }, { x: 7, y: 38 })).toEqual({ x: 5, y: 38, width: 3, height: 3 });
    expect(rectFromCorners({ x: 3, y: 3 }, { x: 3, y: 3 })).toEqual({ x: 3, y: 3, width: 1, height: 1 });
    expect(rectText({ x: 10, y: 20, width: 20, height: 15 })).toBe("(10, 20) to (29, 34): 20 × 15 px");
  });

  it("the audit pager goes back to exactly the page it came from", () => {
    const pager = new AuditPager();
    expect([pager.page, pager.before, pager.hasNewer, pager.hasOlder]).toEqual([1, undefined, false, false]);
    expect(pager.older()).toBe(false);
    pager.loaded("41");
    expect(pager.hasOlder).toBe(true);
    expect(pager.older()).toBe(true);
    expect([pager.page, pager.before, pager.hasOlder]).toEqual([2, "41", false]);
    pager.loaded("21");
    expect(pager.older()).toBe(true);
    pager.loaded(null);
    expect([pager.page, pager.before, pager.hasOlder, pager.hasNewer]).toEqual([3, "21", false, true]);
    expect(pager.newer()).toBe(true);
    expect(pager.before).toBe("41");
    expect(pager.newer()).toBe(true);
    expect(pager.newer()).toBe(false);
    expect([pager.page, pager.before]).toEqual([1, undefined]);
    pager.loaded("41");
    pager.older();
    pager.reset();
    expect([pager.page, pager.before, pager.hasOlder]).toEqual([1, undefined, false]);
  });

  it("a shard's line says what it reports", () => {
    expect(shardText({ id: "shard-1", addr: "a", status: "ok", tiles: 342, queueDepth: 0, placementsPerSec: 12.5, writeMs: 3.1 })).toBe(
      "shard-1 ok · 342 tiles · queue 0 · 12.5/s · write 3.1 ms",
    );
    expect(shardText({ id: "serve", addr: "in-process", status: "ok", tiles: 1, queueDepth: 2, placementsPerSec: null, writeMs: 0.4 })).toBe(
      "serve ok · 1 tiles · queue 2 · write 0.4 ms",
    );
    expect(shardText({ id: "shard-2", addr: "a", status: "unavailable" })).toBe("shard-2 unavailable");
  });

  it("an outcome counts what happened", () => {
    expect(outcomeText("Reset", { reverted: 1, restored: 3, failed: 0 })).toBe("Reset 1 placement, 3 pixels restored");
    expect(outcomeText("Rolled back", { reverted: 2, restored: 1, failed: 1 })).toMatch(/1 failed: do it again$/);
  });
});
