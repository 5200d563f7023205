import { describe, expect, it } from "vitest";
import { TILE_BYTES } from "../../src/protocol";
import { RESYNC_TIMEOUT_MS, tileKey, TileStore, type HeldTile, type TileListener } from "../../src/tiles";

class Recorder implements TileListener {
  replaced: number[] = [];
  pixels: [number, number, number][] = [];
  dropped: number[] = [];
  tileReplaced(t: HeldTile) {
    this.replaced.push(t.key);
  }
  pixelChanged(_t: HeldTile, lx: number, ly: number, c: number) {
    this.pixels.push([lx, ly, c]);
  }
  tileDropped(k: number) {
    this.dropped.push(k);
  }
}

const ev = (...e: number[][]) => Uint8Array.from(e.flat());

function setup(seq = 10) {
  const rec = new Recorder();
  const store = new TileStore(rec);
  store.onTile(3, 4, seq, new Uint8Array(TILE_BYTES));
  return { rec, store, t: store.get(tileKey(3, 4))! };
}

describe("TileStore seq rules", () => {
  it("applies a delta that starts right after the held seq", () => {
    const { store, t, rec } = setup(10);
    expect(store.onPixels(3, 4, 11, ev([1, 2, 5], [1, 2, 6]), 0)).toBe("applied");
    expect(t.seq).toBe(12);
    expect(t.data[2 * 64 + 1]).toBe(6);
    expect(rec.pixels).toEqual([
      [1, 2, 5],
      [1, 2, 6],
    ]);
    expect(store.colorAt(3 * 64 + 1, 4 * 64 + 2)).toBe(6);
  });

  it("an empty delta at seq+1 is an up-to-date answer", () => {
    const { store, t } = setup(10);
    expect(store.onPixels(3, 4, 11, ev(), 0)).toBe("applied");
    expect(t.seq).toBe(10);
  });

  it("a gap asks for a resync once, then ignores deltas until it is answered", () => {
    const { store, t, rec } = setup(10);
    expect(store.onPixels(3, 4, 13, ev([0, 0, 1]), 0)).toBe("gap");
    expect(store.onPixels(3, 4, 14, ev([0, 0, 2]), 1)).toBe("ignored");
    expect(rec.pixels).toEqual([]);
    expect(t.seq).toBe(10);
    // The answer: every event after 10.
    expect(store.onPixels(3, 4, 11, ev([0, 0, 7], [0, 0, 8], [0, 0, 1], [0, 0, 2]), 2)).toBe("applied");
    expect(t.seq).toBe(14);
    expect(t.resyncSince).toBeNull();
    expect(t.data[0]).toBe(2);
  });

  it("a resync with no answer is asked for again after a timeout", () => {
    const { store } = setup(10);
    expect(store.onPixels(3, 4, 13, ev([0, 0, 1]), 0)).toBe("gap");
    expect(store.onPixels(3, 4, 14, ev([0, 0, 1]), RESYNC_TIMEOUT_MS + 1)).toBe("gap");
  });

  it("skips events it already holds and applies the rest", () => {
    const { store, t, rec } = setup(10);
    expect(store.onPixels(3, 4, 9, ev([0, 0, 1], [0, 0, 2], [0, 0, 3]), 0)).toBe("applied");
    expect(t.seq).toBe(11);
    expect(rec.pixels).toEqual([[0, 0, 3]]);
    expect(store.onPixels(3, 4, 5, ev([0, 0, 9]), 0)).toBe("ignored");
    expect(t.data[0]).toBe(3);
  });

  it("a snapshot replaces data and seq and ends a resync", () => {
    const { store, t, rec } = setup(10);
    store.onPixels(3, 4, 20, ev([0, 0, 1]), 0);
    const data = new Uint8Array(TILE_BYTES).fill(4);
    store.onTile(3, 4, 25, data);
    expect(t.seq).toBe(25);
    expect(t.data).toBe(data);
    expect(t.resyncSince).toBeNull();
    expect(rec.replaced.length).toBe(2);
    expect(store.onPixels(3, 4, 26, ev([0, 0, 1]), 0)).toBe("applied");
  });

  it("deltas for tiles not held are unknown", () => {
    const { store } = setup();
    expect(store.onPixels(0, 0, 1, ev([0, 0, 1]), 0)).toBe("unknown");
  });

  it("hostile coordinates are ignored but counted", () => {
    const { store, t } = setup(0);
    expect(store.onPixels(3, 4, 1, ev([64, 0, 1], [0, 200, 1], [1, 1, 3]), 0)).toBe("applied");
    expect(t.seq).toBe(3);
    expect(t.data[65]).toBe(3);
  });

  it("evicts the least recently used tiles beyond the cap, never those kept", () => {
    const rec = new Recorder();
    const store = new TileStore(rec);
    for (let i = 0; i < 5; i++) {
      store.onTile(i, 0, 0, new Uint8Array(TILE_BYTES));
      store.touch([tileKey(i, 0)]);
    }
    store.evict(2, new Set([tileKey(0, 0)]));
    expect(store.size).toBe(2);
    expect(store.get(tileKey(0, 0))).toBeDefined();
    expect(store.get(tileKey(4, 0))).toBeDefined();
    expect(rec.dropped).toEqual([tileKey(1, 0), tileKey(2, 0), tileKey(3, 0)]);
  });
});
