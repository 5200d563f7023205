// The one WebSocket to /ws: session, reconnects with exponential backoff and
// full jitter, pings, and an outgoing frame budget under the server's
// 50 frames/s. Knows bytes and close codes, not tiles.

import { guestProof } from "./pow";
import { decodeServer, encodePing, ProtocolError, type ServerMsg } from "./protocol";

export type Status = "connecting" | "live" | "reconnecting";

/** Close codes of docs/PROTOCOL.md. */
export const CLOSE_FELL_BEHIND = 4000;
export const CLOSE_UNAUTHORIZED = 4401;

export const PING_INTERVAL_MS = 20_000;
/** No message at all for this long (pongs included) means the socket is dead. */
export const SILENCE_LIMIT_MS = 50_000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;
/** Outgoing budget: the server allows 50 frames/s with bursts of 100. */
const SEND_RATE_PER_S = 40;
const SEND_BURST = 40;

/** Full-jitter backoff: a uniform delay in [0, min(cap, base * 2^attempt)). */
export function backoffDelay(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempt, 20));
  return Math.floor(random() * ceiling);
}

/** A token bucket: may a frame go now? */
export class SendBudget {
  private tokens: number;
  private last: number;

  constructor(
    private ratePerS = SEND_RATE_PER_S,
    private burst = SEND_BURST,
    now = 0,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  take(now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.ratePerS) / 1000);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until a token is there. */
  wait(): number {
    return Math.max(0, Math.ceil(((1 - this.tokens) * 1000) / this.ratePerS));
  }
}

export interface ConnectionEvents {
  /** The socket is open; the first message will be `welcome`. */
  onOpen(): void;
  onMessage(msg: ServerMsg): void;
  /** The socket closed; a reconnect is scheduled. */
  onClose(code: number): void;
  onStatus(status: Status): void;
  /** No guest session can be made yet (too many from this address): watch until `retryAfterMs` has passed. */
  onLimited(retryAfterMs: number): void;
}

/** Guest creation answered 429: this address made too many guests this minute. */
export class GuestLimited extends Error {
  constructor(readonly retryAfterMs: number) {
    super("too many new guests from this address");
  }
}

/** Milliseconds a `Retry-After` header asks for (seconds), or `fallback` without a usable one. */
export function retryAfterMs(header: string | null, fallback = 60_000): number {
  const s = header === null ? NaN : Number(header);
  return Number.isFinite(s) && s >= 0 ? Math.min(s, 3600) * 1000 : fallback;
}

/**
 * Makes sure the browser holds a session cookie: `POST /auth/guest` answers the session's user
 * when there is one and makes a guest otherwise (with the challenge solved), so a first visit
 * never meets a 401.
 */
export async function ensureSession(): Promise<void> {
  // A new guest pays a proof of work (src/pow.ts); with a session the server ignores it.
  const proof = await guestProof();
  const guest = await fetch("/api/v1/auth/guest", {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(proof),
  });
  if (guest.status === 429) throw new GuestLimited(retryAfterMs(guest.headers.get("retry-after")));
  if (!guest.ok) throw new Error(`POST /api/v1/auth/guest: ${guest.status}`);
}

const SESSION_KEY = "place.hadSession";

function hadSession(): boolean {
  try {
    return localStorage.getItem(SESSION_KEY) === "1";
  } catch {
    return false;
  }
}

function rememberSession(): void {
  try {
    localStorage.setItem(SESSION_KEY, "1");
  } catch {
    /* private mode: ask every time */
  }
}

export class Connection {
  private ws: WebSocket | null = null;
  private attempt = 0;
  /** Ask for a session first, unless this browser got one before (then a 4401 will tell). */
  private needSession = !hadSession();
  private queue: Uint8Array[] = [];
  private budget = new SendBudget(undefined, undefined, performance.now());
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private lastHeard = 0;
  private everLive = false;
  private offlineUntil = 0;
  /** When (performance.now ms) the scheduled reconnect runs, or null if none is scheduled. */
  private retryAt: number | null = null;

  constructor(
    private url: string,
    private events: ConnectionEvents,
  ) {}

  start(): void {
    this.events.onStatus("connecting");
    void this.connect();
  }

  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Queues a frame; frames are sent in order within the budget. Dropped while closed. */
  send(frame: Uint8Array): void {
    if (!this.open) return;
    this.queue.push(frame);
    this.flush();
  }

  /**
   * Closes the socket as a network failure would (tests, debugging) and stays
   * offline for at least `offlineMs` before reconnecting.
   */
  drop(offlineMs = 0): void {
    this.offlineUntil = performance.now() + offlineMs;
    this.ws?.close(4999, "dropped by client");
  }

  /**
   * The session changed (sign in, sign out): reconnect at once, first making
   * sure of a session (a guest one after signing out).
   */
  renew(): void {
    this.needSession = true;
    this.offlineUntil = 0;
    if (this.ws) this.ws.close(4999, "session changed");
    else this.retryNow(); // never connected (over the guest limit): waiting out a retry
  }

  /** Milliseconds until the next attempt to connect, or null while connected or connecting. */
  get retryIn(): number | null {
    return this.retryAt === null ? null : Math.max(0, this.retryAt - performance.now());
  }

  /** Tries again at once instead of waiting out the backoff. */
  retryNow(): void {
    if (!this.retryTimer) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.offlineUntil = 0;
    void this.connect();
  }

  /** The first welcome arrived: the connection is live and backoff starts over. */
  markLive(): void {
    this.attempt = 0;
    this.everLive = true;
    this.events.onStatus("live");
  }

  private async connect(): Promise<void> {
    this.retryTimer = null;
    this.retryAt = null;
    try {
      if (this.needSession) {
        await ensureSession();
        this.needSession = false;
        rememberSession();
      }
    } catch (e) {
      if (e instanceof GuestLimited) {
        this.events.onLimited(e.retryAfterMs);
        this.offlineUntil = Math.max(this.offlineUntil, performance.now() + e.retryAfterMs);
      } else {
        console.warn("place: session:", e);
      }
      this.scheduleReconnect();
      return;
    }
    performance.mark("place:connect");
    const ws = new WebSocket(this.url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      performance.mark("place:open");
      this.lastHeard = performance.now();
      this.pingTimer = setInterval(() => this.ping(), PING_INTERVAL_MS);
      this.events.onOpen();
    };
    ws.onmessage = (ev) => {
      this.lastHeard = performance.now();
      if (!(ev.data instanceof ArrayBuffer)) return; // the binary protocol only
      let msg: ServerMsg;
      try {
        msg = decodeServer(ev.data);
      } catch (e) {
        if (e instanceof ProtocolError) {
          console.warn("place: bad frame from server:", e.message);
          return;
        }
        throw e;
      }
      this.events.onMessage(msg);
    };
    ws.onclose = (ev) => this.closed(ws, ev.code);
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  private closed(ws: WebSocket, code: number): void {
    if (this.ws !== ws) return;
    this.ws = null;
    this.queue = [];
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.pingTimer = this.flushTimer = null;
    if (code === CLOSE_UNAUTHORIZED) this.needSession = true;
    // Fell behind or dropped: come back at once (with jitter); anything else backs off.
    if (code === CLOSE_FELL_BEHIND || code === 4999) this.attempt = 0;
    this.scheduleReconnect();
    this.events.onClose(code);
    this.events.onStatus(this.everLive ? "reconnecting" : "connecting");
  }

  private scheduleReconnect(): void {
    if (this.retryTimer) return;
    const delay = Math.max(backoffDelay(this.attempt++), this.offlineUntil - performance.now());
    this.retryAt = performance.now() + delay;
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  private ping(): void {
    if (performance.now() - this.lastHeard > SILENCE_LIMIT_MS) {
      this.ws?.close(4998, "silent server");
      return;
    }
    this.send(encodePing());
  }

  private flush(): void {
    if (this.flushTimer) return;
    while (this.queue.length > 0 && this.ws && this.open) {
      if (!this.budget.take(performance.now())) {
        this.flushTimer = setTimeout(() => {
          this.flushTimer = null;
          this.flush();
        }, this.budget.wait());
        return;
      }
      this.ws.send(this.queue.shift()!);
    }
  }
}
