import { describe, expect, it } from "vitest";
import { backoffDelay, SendBudget } from "../../src/connection";
import { paletteTable, parseColor } from "../../src/palette";
import { CONFIRMED_TTL_MS, Placements, RETRY_FOR_MS, UNANSWERED_TTL_MS } from "../../src/placements";
import { cooldownText } from "../../src/ui";

function one(p: Placements, x = 5, y = 6, color = 3) {
  const requestId = p.newRequestId();
  p.add({ requestId, x, y, color, sentAt: 0, confirmedAt: null });
  return requestId;
}

describe("optimistic placements", () => {
  it("overlay shows until rejected", () => {
    const p = new Placements();
    const id = one(p);
    expect(p.colorAt(5, 6)).toBe(3);
    expect(p.remove(id)?.x).toBe(5);
    expect(p.colorAt(5, 6)).toBeUndefined();
  });

  it("a confirmed placement settles on any event at its pixel", () => {
    const p = new Placements();
    const id = one(p);
    p.confirm(id, 10);
    expect(p.settle(5, 7, 3)).toEqual([]);
    expect(p.settle(5, 6, 9).length).toBe(1);
    expect(p.size).toBe(0);
  });

  it("an unconfirmed one settles only on an event of its own colour", () => {
    const p = new Placements();
    one(p);
    expect(p.settle(5, 6, 9)).toEqual([]);
    expect(p.settle(5, 6, 3).length).toBe(1);
  });

  it("one settled by its echo before its success is still found by confirm, once", () => {
    // The server may send the pixel's event before the placement's answer: the overlay goes,
    // but the answer must still name the placement (the tooltip's "you" comes from it).
    const p = new Placements();
    const id = one(p);
    expect(p.settle(5, 6, 3).length).toBe(1);
    expect(p.size).toBe(0);
    expect(p.confirm(id, 10)?.x).toBe(5);
    expect(p.confirm(id, 11)).toBeUndefined();
    // Never answered: forgotten with the unanswered ones.
    const late = one(p);
    p.settle(5, 6, 3);
    p.expire(UNANSWERED_TTL_MS + 1);
    expect(p.confirm(late, UNANSWERED_TTL_MS + 2)).toBeUndefined();
  });

  it("a placement refused for now stays shown, pending, and is sent again when due", () => {
    const p = new Placements();
    const id = one(p);
    expect(p.retryLater(id, 100, 1000)?.retries).toBe(1);
    expect(p.colorAt(5, 6)).toBe(3);
    expect(p.pending).toBe(1);
    expect(p.dueRetries(1099)).toEqual([]);
    const due = p.dueRetries(1100);
    expect(due.map((x) => x.requestId)).toEqual([id]);
    expect(due[0].sentAt).toBe(1100);
    expect(p.pending).toBe(0);
    expect(p.dueRetries(5000)).toEqual([]); // sent once per refusal
    expect(p.colorAt(5, 6)).toBe(3);
  });

  it("gives a pending placement up after RETRY_FOR_MS from its first sending", () => {
    const p = new Placements();
    const id = one(p); // first sent at 0
    expect(p.retryLater(id, RETRY_FOR_MS - 2000, 1000)).toBeDefined();
    p.dueRetries(RETRY_FOR_MS - 1000);
    expect(p.retryLater(id, RETRY_FOR_MS - 500, 1000)).toBeUndefined();
    expect(p.retryLater(999, 0, 1000)).toBeUndefined();
  });

  it("expires confirmed and unanswered placements", () => {
    const p = new Placements();
    const a = one(p);
    one(p, 1, 1);
    p.confirm(a, 0);
    expect(p.expire(CONFIRMED_TTL_MS + 1).map((x) => x.requestId)).toEqual([a]);
    expect(p.expire(UNANSWERED_TTL_MS + 1).length).toBe(1);
  });

  it("drops unanswered ones on disconnect; request ids are never 0", () => {
    const p = new Placements();
    const a = one(p);
    one(p, 2, 2);
    p.confirm(a, 0);
    expect(p.dropUnanswered().length).toBe(1);
    expect(p.size).toBe(1);
    expect(a).toBeGreaterThan(0);
  });
});

describe("connection helpers", () => {
  it("full-jitter backoff grows, is capped and uses the whole range", () => {
    expect(backoffDelay(0, () => 0.999)).toBeLessThan(500);
    expect(backoffDelay(3, () => 0.999)).toBeGreaterThan(3900);
    expect(backoffDelay(100, () => 0.999)).toBeLessThanOrEqual(30000);
    expect(backoffDelay(5, () => 0)).toBe(0);
  });

  it("send budget: a burst, then the rate", () => {
    const b = new SendBudget(40, 40, 0);
    let sent = 0;
    while (b.take(0)) sent++;
    expect(sent).toBe(40);
    expect(b.wait()).toBe(25);
    expect(b.take(25)).toBe(true);
    expect(b.take(25)).toBe(false);
  });
});

describe("palette and panels", () => {
  it("colours become little-endian RGBA words", () => {
    expect(parseColor("#ff0000")).toBe(0xff0000ff);
    expect(parseColor("#0000ff")).toBe(0xffff0000);
    expect(parseColor("#fff")).toBe(0xffffffff);
    const t = paletteTable(["#000000", "#ffffff"]);
    expect(t[1]).toBe(0xffffffff);
    expect(t[200]).toBe(0xff000000);
  });

  it("cooldown text", () => {
    expect(cooldownText(0)).toBe("Ready");
    expect(cooldownText(4200)).toBe("0:05");
    expect(cooldownText(61000)).toBe("1:01");
  });
});
