// Which tiles the connection is subscribed to, and the frames that move it to
// the tiles the view wants. Pure: the caller sends what plan() returns.

import type { SubscribeEntry } from "./protocol";
import { keyTx, keyTy, tileKey, type TileStore } from "./tiles";
import { rangeCount, type TileRange } from "./view";

export interface Plan {
  unsubscribe: { tx: number; ty: number }[];
  subscribe: SubscribeEntry[];
}

/** The keys of every tile in a range. */
export function rangeKeys(r: TileRange): Set<number> {
  const keys = new Set<number>();
  for (let ty = r.ty0; ty <= r.ty1; ty++) for (let tx = r.tx0; tx <= r.tx1; tx++) keys.add(tileKey(tx, ty));
  return keys;
}

/**
 * The tiles to subscribe to for a view: the visible range plus a margin,
 * the visible range alone when that is too many, or null (overview mode) when
 * even the visible tiles exceed `max`.
 */
export function wantedTiles(visible: TileRange, withMargin: TileRange, max: number): Set<number> | null {
  if (rangeCount(withMargin) <= max) return rangeKeys(withMargin);
  if (rangeCount(visible) <= max) return rangeKeys(visible);
  return null;
}

/** A subscribe entry for a tile: with its seq when the client holds it. */
export function entryFor(key: number, store: TileStore): SubscribeEntry {
  const held = store.get(key);
  const e: SubscribeEntry = { tx: keyTx(key), ty: keyTy(key) };
  if (held) e.seq = held.seq;
  return e;
}

export class Subscriptions {
  /** What the server has been asked to send us on this connection. */
  readonly subscribed = new Set<number>();

  /**
   * Moves the subscription to `wanted`: unsubscribe what left, subscribe what
   * came in (with seqs for tiles held). Unsubscribe is sent first so the
   * server's per-connection limit is never exceeded.
   */
  plan(wanted: ReadonlySet<number>, store: TileStore): Plan {
    const unsubscribe: { tx: number; ty: number }[] = [];
    for (const k of this.subscribed) {
      if (!wanted.has(k)) {
        unsubscribe.push({ tx: keyTx(k), ty: keyTy(k) });
        this.subscribed.delete(k);
      }
    }
    const subscribe: SubscribeEntry[] = [];
    for (const k of wanted) {
      if (!this.subscribed.has(k)) {
        subscribe.push(entryFor(k, store));
        this.subscribed.add(k);
      }
    }
    return { unsubscribe, subscribe };
  }

  /** The connection closed: the server forgot everything. */
  reset(): void {
    this.subscribed.clear();
  }
}
