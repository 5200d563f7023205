// Tile bookkeeping: which tiles the client holds, at which seq, and whether a
// delta can be applied. Pure: the renderer listens through TileListener.
//
// Rule (docs/PROTOCOL.md, "Concepts"): a tile held at seq N becomes seq N+k by
// applying events N+1 .. N+k in order. A `pixels` message whose events start
// after N+1 leaves a gap: the tile is resubscribed with seq N and the server
// answers with exactly what was missed (or a fresh snapshot).

import { TILE_BYTES, TILE_SIZE } from "./protocol";

/** Tiles are keyed by one number: tx * 65536 + ty (both u16 on the wire). */
export function tileKey(tx: number, ty: number): number {
  return tx * 65536 + ty;
}

export function keyTx(key: number): number {
  return Math.floor(key / 65536);
}

export function keyTy(key: number): number {
  return key % 65536;
}

export interface HeldTile {
  key: number;
  tx: number;
  ty: number;
  seq: number;
  /** 4096 palette indices, row-major: what the server holds at `seq`. */
  data: Uint8Array;
  /** A resubscribe with seq is in flight: later deltas are dropped until its answer. */
  resyncSince: number | null;
  /** For least-recently-used eviction. */
  lastUsed: number;
}

export interface TileListener {
  /** The whole tile changed (a snapshot). */
  tileReplaced(tile: HeldTile): void;
  /** One pixel of a tile changed. */
  pixelChanged(tile: HeldTile, lx: number, ly: number, color: number): void;
  /** The tile is no longer held. */
  tileDropped(key: number): void;
}

/** What became of a `pixels` message. */
export type DeltaOutcome =
  /** Applied (or partly applied: events already held were skipped). */
  | "applied"
  /** Every event was already held, or the tile is waiting for a resync. */
  | "ignored"
  /** Events are missing before this message: resubscribe the tile with its seq. */
  | "gap"
  /** The tile is not held: nothing to apply to. */
  | "unknown";

/** A resync that got no answer within this time may be asked for again. */
export const RESYNC_TIMEOUT_MS = 3000;

export class TileStore {
  private tiles = new Map<number, HeldTile>();
  private clock = 0;

  constructor(private listener: TileListener) {}

  get size(): number {
    return this.tiles.size;
  }

  get(key: number): HeldTile | undefined {
    return this.tiles.get(key);
  }

  /** Palette index of a held pixel, or undefined. */
  colorAt(x: number, y: number): number | undefined {
    const t = this.tiles.get(tileKey(Math.floor(x / TILE_SIZE), Math.floor(y / TILE_SIZE)));
    return t?.data[(y % TILE_SIZE) * TILE_SIZE + (x % TILE_SIZE)];
  }

  keys(): IterableIterator<number> {
    return this.tiles.keys();
  }

  /** Marks tiles as in use now (they are on screen). */
  touch(keys: Iterable<number>): void {
    this.clock++;
    for (const k of keys) {
      const t = this.tiles.get(k);
      if (t) t.lastUsed = this.clock;
    }
  }

  /** A snapshot: replaces whatever was held. */
  onTile(tx: number, ty: number, seq: number, data: Uint8Array): void {
    if (data.length !== TILE_BYTES) return;
    const key = tileKey(tx, ty);
    let t = this.tiles.get(key);
    if (t) {
      t.seq = seq;
      t.data = data;
      t.resyncSince = null;
    } else {
      t = { key, tx, ty, seq, data, resyncSince: null, lastUsed: this.clock };
      this.tiles.set(key, t);
    }
    this.listener.tileReplaced(t);
  }

  /** A delta: events[i] = (lx, ly, color) with seq firstSeq + i. */
  onPixels(tx: number, ty: number, firstSeq: number, events: Uint8Array, now: number): DeltaOutcome {
    const t = this.tiles.get(tileKey(tx, ty));
    if (!t) return "unknown";
    const count = Math.floor(events.length / 3);
    if (firstSeq > t.seq + 1) {
      if (t.resyncSince !== null && now - t.resyncSince < RESYNC_TIMEOUT_MS) return "ignored";
      t.resyncSince = now;
      return "gap";
    }
    // firstSeq <= seq + 1: skip the events already held, apply the rest.
    const skip = t.seq + 1 - firstSeq;
    if (skip > count) return "ignored";
    t.resyncSince = null;
    for (let i = skip; i < count; i++) {
      const lx = events[3 * i];
      const ly = events[3 * i + 1];
      const color = events[3 * i + 2];
      if (lx >= TILE_SIZE || ly >= TILE_SIZE) continue; // hostile input: ignore, keep counting seqs
      t.data[ly * TILE_SIZE + lx] = color;
      this.listener.pixelChanged(t, lx, ly, color);
    }
    t.seq = firstSeq + count - 1;
    return "applied";
  }

  /** Forgets a tile (it went stale or must be fetched afresh). */
  drop(key: number): void {
    if (this.tiles.delete(key)) this.listener.tileDropped(key);
  }

  /** Marks every held tile as awaiting a resync (after a reconnect). */
  markAllResyncing(now: number): void {
    for (const t of this.tiles.values()) t.resyncSince = now;
  }

  /**
   * Keeps at most `max` tiles, never dropping those in `keep`; the least
   * recently used go first.
   */
  evict(max: number, keep: ReadonlySet<number>): void {
    if (this.tiles.size <= max) return;
    const victims = [...this.tiles.values()]
      .filter((t) => !keep.has(t.key))
      .sort((a, b) => a.lastUsed - b.lastUsed);
    for (const t of victims) {
      if (this.tiles.size <= max) break;
      this.drop(t.key);
    }
  }
}
