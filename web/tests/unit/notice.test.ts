import { describe, expect, it } from "vitest";
import { retryAfterMs } from "../../src/connection";
import { noticeFor, type PlayState } from "../../src/ui";

const live: PlayState = { live: true, everLive: true, retryIn: null, limitedFor: null, banned: false };

describe("noticeFor", () => {
  it("says nothing while the player can play", () => {
    expect(noticeFor(live)).toBeNull();
  });

  it("over the guest limit: watching, when, and sign in", () => {
    const n = noticeFor({ ...live, live: false, everLive: false, retryIn: 42_000, limitedFor: 42_000 });
    expect(n?.kind).toBe("limited");
    expect(n?.text).toContain("you can place in 0:42");
    expect(n?.action).toEqual({ id: "signin", label: "Sign in to play now" });
    expect(noticeFor({ ...live, live: false, limitedFor: 0 })?.text).toContain("trying again now");
  });

  it("a lost connection counts down to its retry, or says it is reconnecting", () => {
    expect(noticeFor({ ...live, live: false, retryIn: 3_200 })).toEqual({
      kind: "offline",
      text: "Connection lost: retrying in 4 s",
      action: { id: "retry", label: "Retry now" },
    });
    expect(noticeFor({ ...live, live: false })?.text).toBe("Connection lost: reconnecting…");
    expect(noticeFor({ ...live, live: false, everLive: false, retryIn: 500 })?.text).toBe("Cannot reach the server: retrying in 1 s");
  });

  it("a ban lasts while live; offline says offline first", () => {
    expect(noticeFor({ ...live, banned: true })?.kind).toBe("banned");
    expect(noticeFor({ ...live, banned: true, live: false })?.kind).toBe("offline");
  });
});

describe("retryAfterMs", () => {
  it("reads seconds, bounded, with a fallback", () => {
    expect(retryAfterMs("17")).toBe(17_000);
    expect(retryAfterMs(null)).toBe(60_000);
    expect(retryAfterMs("soon", 5)).toBe(5);
    expect(retryAfterMs("99999")).toBe(3_600_000);
  });
});
