// Optimistic placements: a pixel the user placed shows at once, above the
// server's truth, until the server confirms it (the tile's own event arrives)
// or rejects it (the overlay goes and the truth shows again). A placement the
// server could not place now and said when to try again (UNAVAILABLE with
// retryAfter, e.g. while a dead shard's tiles move) stays shown, marked
// pending, and is sent again when due, for up to RETRY_FOR_MS. Pure.

export interface Placement {
  requestId: number;
  x: number;
  y: number;
  color: number;
  sentAt: number;
  /** Set when `success` arrived: the overlay waits for the pixel's event. */
  confirmedAt: number | null;
  /** Pending: refused for now, to be sent again at this time (ms). */
  retryAt?: number | null;
  /** How many times it was refused for now and sent again. */
  retries?: number;
  /** When it was first sent (retries stop RETRY_FOR_MS after). */
  firstSentAt?: number;
}

/** A confirmed placement whose event never showed (e.g. not subscribed) is dropped after this. */
export const CONFIRMED_TTL_MS = 5000;
/** A placement with no answer at all is given up (and rolled back) after this. */
export const UNANSWERED_TTL_MS = 15000;
/** A placement refused for now is sent again for this long after it was first sent, then given up. */
export const RETRY_FOR_MS = 15000;

export class Placements {
  private byRequest = new Map<number, Placement>();
  /**
   * Placements settled by their pixel's event before their `success` came (the server may
   * send the echo first): no longer shown, but still answered, so `confirm` finds them.
   */
  private settledEarly = new Map<number, Placement>();
  private nextId = 1;

  get size(): number {
    return this.byRequest.size;
  }

  /** A fresh request id (u32, never 0). */
  newRequestId(): number {
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    return id;
  }

  add(p: Placement): void {
    this.byRequest.set(p.requestId, p);
  }

  get(requestId: number): Placement | undefined {
    return this.byRequest.get(requestId);
  }

  /** The overlay colour at a pixel: the latest placement there, if any. */
  colorAt(x: number, y: number): number | undefined {
    let found: Placement | undefined;
    for (const p of this.byRequest.values()) if (p.x === x && p.y === y) found = p;
    return found?.color;
  }

  all(): IterableIterator<Placement> {
    return this.byRequest.values();
  }

  confirm(requestId: number, now: number): Placement | undefined {
    const p = this.byRequest.get(requestId) ?? this.settledEarly.get(requestId);
    this.settledEarly.delete(requestId);
    if (p) p.confirmedAt = now;
    return p;
  }

  /**
   * The server could not place it now and may be asked again after `afterMs`: the placement
   * stays shown, pending, until `dueRetries` sends it again. Returns it, or undefined when it is
   * unknown or has been retried for RETRY_FOR_MS (the caller then rolls it back).
   */
  retryLater(requestId: number, now: number, afterMs: number): Placement | undefined {
    const p = this.byRequest.get(requestId);
    if (!p) return undefined;
    const first = p.firstSentAt ?? p.sentAt;
    if (now + afterMs - first > RETRY_FOR_MS) return undefined;
    p.firstSentAt = first;
    p.retryAt = now + Math.max(0, afterMs);
    p.retries = (p.retries ?? 0) + 1;
    return p;
  }

  /** Pending placements due to be sent again; each is marked as sent now. */
  dueRetries(now: number): Placement[] {
    const due: Placement[] = [];
    for (const p of this.byRequest.values()) {
      if (p.retryAt != null && p.retryAt <= now) {
        p.retryAt = null;
        p.sentAt = now;
        due.push(p);
      }
    }
    return due;
  }

  /** How many placements wait to be sent again. */
  get pending(): number {
    let n = 0;
    for (const p of this.byRequest.values()) if (p.retryAt != null) n++;
    return n;
  }

  /** Removes a placement; returns it so the caller can redraw its pixel. */
  remove(requestId: number): Placement | undefined {
    const p = this.byRequest.get(requestId) ?? this.settledEarly.get(requestId);
    this.byRequest.delete(requestId);
    this.settledEarly.delete(requestId);
    return p;
  }

  /**
   * The server's event for a pixel arrived: placements there that were
   * confirmed, or that asked for this very colour (the event is most likely
   * their own), are settled: the truth shows from now on.
   */
  settle(x: number, y: number, color: number): Placement[] {
    const done: Placement[] = [];
    for (const p of this.byRequest.values()) {
      if (p.x === x && p.y === y && (p.confirmedAt !== null || p.color === color)) done.push(p);
    }
    for (const p of done) {
      this.byRequest.delete(p.requestId);
      if (p.confirmedAt === null) this.settledEarly.set(p.requestId, p);
    }
    return done;
  }

  /** Drops placements that outlived their time; returns them. */
  expire(now: number): Placement[] {
    for (const [id, p] of this.settledEarly) if (now - p.sentAt > UNANSWERED_TTL_MS) this.settledEarly.delete(id);
    const done: Placement[] = [];
    for (const p of this.byRequest.values()) {
      const age = p.confirmedAt !== null ? now - p.confirmedAt : now - p.sentAt;
      if (age > (p.confirmedAt !== null ? CONFIRMED_TTL_MS : UNANSWERED_TTL_MS)) done.push(p);
    }
    for (const p of done) this.byRequest.delete(p.requestId);
    return done;
  }

  /** The connection closed: unanswered placements will never be answered. */
  dropUnanswered(): Placement[] {
    this.settledEarly.clear();
    const done = [...this.byRequest.values()].filter((p) => p.confirmedAt === null);
    for (const p of done) this.byRequest.delete(p.requestId);
    return done;
  }
}
