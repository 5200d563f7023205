import { describe, expect, it } from "vitest";
import { TILE_BYTES } from "../../src/protocol";
import { rangeKeys, Subscriptions, wantedTiles } from "../../src/subscriptions";
import { tileKey, TileStore } from "../../src/tiles";

const noop = { tileReplaced() {}, pixelChanged() {}, tileDropped() {} };

describe("subscriptions", () => {
  it("wantedTiles prefers the margin, falls back to the visible range, then to overview", () => {
    const visible = { tx0: 2, ty0: 2, tx1: 3, ty1: 3 };
    const margin = { tx0: 1, ty0: 1, tx1: 4, ty1: 4 };
    expect(wantedTiles(visible, margin, 16)!.size).toBe(16);
    expect(wantedTiles(visible, margin, 15)!.size).toBe(4);
    expect(wantedTiles(visible, margin, 3)).toBeNull();
  });

  it("plans only the difference, unsubscribing first, with seqs for held tiles", () => {
    const store = new TileStore(noop);
    store.onTile(1, 1, 42, new Uint8Array(TILE_BYTES));
    const subs = new Subscriptions();
    const first = subs.plan(rangeKeys({ tx0: 0, ty0: 0, tx1: 1, ty1: 1 }), store);
    expect(first.unsubscribe).toEqual([]);
    expect(first.subscribe).toContainEqual({ tx: 1, ty: 1, seq: 42 });
    expect(first.subscribe).toContainEqual({ tx: 0, ty: 0 });
    expect(first.subscribe.length).toBe(4);

    const second = subs.plan(rangeKeys({ tx0: 1, ty0: 0, tx1: 2, ty1: 1 }), store);
    expect(second.unsubscribe.sort((a, b) => a.ty - b.ty)).toEqual([
      { tx: 0, ty: 0 },
      { tx: 0, ty: 1 },
    ]);
    expect(second.subscribe.map((e) => [e.tx, e.ty]).sort()).toEqual([
      [2, 0],
      [2, 1],
    ]);
    expect(subs.subscribed.size).toBe(4);
    expect(subs.plan(rangeKeys({ tx0: 1, ty0: 0, tx1: 2, ty1: 1 }), store)).toEqual({ unsubscribe: [], subscribe: [] });
  });

  it("after a reconnect every wanted tile is subscribed again, held ones with their seq", () => {
    const store = new TileStore(noop);
    const subs = new Subscriptions();
    const wanted = rangeKeys({ tx0: 0, ty0: 0, tx1: 0, ty1: 1 });
    subs.plan(wanted, store);
    store.onTile(0, 0, 7, new Uint8Array(TILE_BYTES));
    store.onTile(0, 1, 0, new Uint8Array(TILE_BYTES));
    subs.reset();
    const again = subs.plan(wanted, store);
    expect(again.unsubscribe).toEqual([]);
    expect(again.subscribe).toEqual([
      { tx: 0, ty: 0, seq: 7 },
      { tx: 0, ty: 1, seq: 0 },
    ]);
    expect(subs.subscribed.has(tileKey(0, 1))).toBe(true);
  });
});
