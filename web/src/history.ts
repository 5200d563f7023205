// Who placed a pixel, and the heatmap of recent activity: the page's side of
// /api/v1/history. Hovering a pixel (or a long press on a phone) shows its
// last placements in a tooltip: asked for after the pointer rests a moment,
// cached per pixel, forgotten when that pixel changes. The heatmap button
// lays the last hour's activity over the canvas, refreshed while it is on.
// The rules (cache, texts, colours) are pure and tested in tests/unit.

import { remember, remembered } from "./prefs";
import { el } from "./ui";

/** One placement as GET /api/v1/history/pixel lists it. */
export interface HistoryItem {
  x: number;
  y: number;
  color: number;
  userId: string;
  username: string | null;
  placedAt: number;
  reverted: boolean;
  restore: boolean;
}

/** GET /api/v1/history/heatmap. */
export interface Heatmap {
  minutes: number;
  cellSize: number;
  columns: number;
  rows: number;
  total: number;
  max: number;
  truncated: boolean;
  cells: [number, number, number][];
}

/** The heatmap as the renderer draws it: one pixel per cell, stretched over the canvas. */
export interface HeatLayer {
  cellSize: number;
  columns: number;
  rows: number;
  /** RGBA, columns x rows. */
  rgba: Uint8ClampedArray<ArrayBuffer>;
}

/** This player's own placement is shown from the moment it is accepted for this long (the server's history follows within a second or two). */
export const MINE_KEPT_MS = 10_000;

/** A pixel's history with this player's new placement first, unless the server's list has it already. */
export function withMine(items: readonly HistoryItem[], mine: HistoryItem): HistoryItem[] {
  const has = items.some((i) => i.userId === mine.userId && i.color === mine.color && i.placedAt >= mine.placedAt - 5000);
  return has ? [...items] : [mine, ...items].slice(0, TOOLTIP_ITEMS);
}

/** How long the pointer rests on a pixel before its history is asked for. */
export const HOVER_DELAY_MS = 250;
/** Placements shown per pixel. */
export const TOOLTIP_ITEMS = 3;
/** Pixels whose history is kept. */
export const CACHE_PIXELS = 256;
/** A kept history is asked for again after this long (changes are also seen live). */
export const CACHE_TTL_MS = 60_000;
/** The heatmap's windows (the server's), the default one, and the refresh period (the server keeps it a sixtieth of the window). */
export const HEATMAP_WINDOWS = [5, 15, 60, 360, 1440] as const;
export const HEATMAP_MINUTES = 60;
export const HEATMAP_REFRESH_MS = 30_000;

/** "just now", "42 s ago", "5 min ago", "3 h ago", "2 d ago". */
export function agoText(epochMs: number, now: number): string {
  const s = Math.max(0, Math.round((now - epochMs) / 1000));
  if (s < 5) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

/** Who is playing, as far as the tooltip cares. */
export interface Player {
  userId: string;
  isGuest: boolean;
}

/**
 * One line of the tooltip: "alice · 5 min ago", marked when rolled back or a restore. A guest's
 * own placements say "you", as they do from the moment the guest makes them (the server names a
 * guest by a generated name the guest never chose).
 */
export function placementText(p: HistoryItem, now: number, me: Player | null = null): string {
  const who = me?.isGuest && p.userId === me.userId ? "you" : (p.username ?? `#${p.userId}`);
  const mark = p.reverted ? " (rolled back)" : p.restore ? " (moderator restore)" : "";
  return `${who} · ${agoText(p.placedAt, now)}${mark}`;
}

/** A pixel's latest placements, kept for a while and dropped when the pixel changes. */
export class PixelHistoryCache {
  private entries = new Map<string, { items: HistoryItem[]; at: number }>();

  constructor(
    private capacity = CACHE_PIXELS,
    private ttlMs = CACHE_TTL_MS,
  ) {}

  static key(x: number, y: number): string {
    return `${x},${y}`;
  }

  get(x: number, y: number, now: number): HistoryItem[] | undefined {
    const key = PixelHistoryCache.key(x, y);
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (now - e.at > this.ttlMs) {
      this.entries.delete(key);
      return undefined;
    }
    // Most recently used last: the first key is the one to evict.
    this.entries.delete(key);
    this.entries.set(key, e);
    return e.items;
  }

  set(x: number, y: number, items: HistoryItem[], now: number): void {
    const key = PixelHistoryCache.key(x, y);
    this.entries.delete(key);
    this.entries.set(key, { items, at: now });
    while (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }

  /** The pixel changed: what was kept of it is stale. True if something was dropped. */
  invalidate(x: number, y: number): boolean {
    return this.entries.delete(PixelHistoryCache.key(x, y));
  }

  get size(): number {
    return this.entries.size;
  }
}

/** Heat colour of a cell: transparent for none, yellow to red, more opaque the busier. */
export function heatColor(count: number, max: number): [number, number, number, number] {
  if (count <= 0 || max <= 0) return [0, 0, 0, 0];
  const t = Math.min(1, Math.log1p(count) / Math.log1p(max));
  return [255, Math.round(220 * (1 - t)), 0, Math.round(255 * (0.3 + 0.5 * t))];
}

/** The heatmap as an RGBA bitmap of one pixel per cell. */
export function heatLayer(h: Heatmap): HeatLayer {
  const rgba = new Uint8ClampedArray(new ArrayBuffer(h.columns * h.rows * 4));
  for (const [cx, cy, n] of h.cells) {
    if (cx < 0 || cy < 0 || cx >= h.columns || cy >= h.rows) continue;
    rgba.set(heatColor(n, h.max), (cy * h.columns + cx) * 4);
  }
  return { cellSize: h.cellSize, columns: h.columns, rows: h.rows, rgba };
}

/** "60 min", "6 h", "24 h". */
export function windowText(minutes: number): string {
  return minutes < 120 ? `${minutes} min` : `${minutes / 60} h`;
}

/** "Activity, last 60 min: 5,120 placements" (and a note when the server counted only part). */
export function heatmapText(h: Heatmap): string {
  const n = h.total.toLocaleString("en");
  return `Activity, last ${windowText(h.minutes)}: ${n} placement${h.total === 1 ? "" : "s"}${h.truncated ? " (the newest only)" : ""}`;
}

/** The legend's CSS gradient: the heat colours from one placement per cell to the busiest. */
export function legendGradient(): string {
  const stops = [1, 2, 4, 8, 16].map((n, i) => {
    const [r, g, b, a] = heatColor(n, 16);
    return `rgba(${r}, ${g}, ${b}, ${(a / 255).toFixed(2)}) ${i * 25}%`;
  });
  return `linear-gradient(to right, ${stops.join(", ")})`;
}

export interface HistoryHooks {
  /** The palette, to show a placement's colour. */
  palette(): readonly string[];
  /** Lays the heatmap over the canvas (null: none) at this opacity (lower shows the canvas's colours). */
  heat(layer: HeatLayer | null, opacity: number): void;
  /** Why placing at (x, y) is restricted (protected regions), one line each. */
  restrictions(x: number, y: number): string[];
  /** Who is playing (null: not known yet). */
  me(): Player | null;
}

/** The pixel tooltip and the heatmap toggle. */
export class HistoryView {
  private tooltip = el("pixel-info");
  private heatButton = el<HTMLButtonElement>("heatmap-button");
  private heatPanel = el("heatmap-panel");
  private heatNote = el("heatmap-note");
  private heatWindow = el<HTMLSelectElement>("heatmap-window");
  private heatOpacity = el<HTMLInputElement>("heatmap-opacity");
  private heatLayer: HeatLayer | null = null;
  private cache = new PixelHistoryCache();
  /** The pixel the tooltip is for, and where on screen (CSS px) to show it. */
  private target: { x: number; y: number; sx: number; sy: number } | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** The target came from a finger: the tooltip goes above it, where the finger hides nothing. */
  private byFinger = false;
  private inFlight = new Map<string, Promise<HistoryItem[]>>();
  /** Placements this player just made, shown until the server's history surely has them. */
  private mine = new Map<string, HistoryItem>();
  private heatTimer: ReturnType<typeof setTimeout> | null = null;
  heatOn = false;

  constructor(private hooks: HistoryHooks) {
    this.heatButton.addEventListener("click", () => this.setHeat(!this.heatOn));
    const minutes = Number(remembered("heatmapMinutes"));
    if ((HEATMAP_WINDOWS as readonly number[]).includes(minutes)) this.heatWindow.value = String(minutes);
    this.heatOpacity.value = remembered("heatmapOpacity") ?? "0.6";
    el("heatmap-legend").querySelector("i")!.style.background = legendGradient();
    this.heatWindow.addEventListener("change", () => {
      remember("heatmapMinutes", this.heatWindow.value);
      void this.refreshHeat();
    });
    this.heatOpacity.addEventListener("input", () => {
      remember("heatmapOpacity", this.heatOpacity.value);
      if (this.heatOn && this.heatLayer) this.hooks.heat(this.heatLayer, this.opacity);
    });
  }

  /** The pointer rests on pixel (x, y) at screen (sx, sy); null when it left the canvas. */
  hover(p: { x: number; y: number; sx: number; sy: number } | null, delayMs = HOVER_DELAY_MS): void {
    const same = p && this.target && p.x === this.target.x && p.y === this.target.y;
    if (same) {
      this.target = p;
      this.place();
      return;
    }
    this.target = p;
    this.byFinger = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.tooltip.hidden = true;
    if (!p) return;
    this.timer = setTimeout(() => void this.show(), delayMs);
  }

  /** A long press: the history at once. */
  press(p: { x: number; y: number; sx: number; sy: number }): void {
    this.hover(null);
    this.hover(p, 0);
    this.byFinger = true;
  }

  /**
   * This player's placement was accepted: the tooltip shows it at once, before the server's
   * history has it.
   */
  placed(x: number, y: number, color: number, me: { userId: string; username: string; isGuest: boolean } | null): void {
    const now = Date.now();
    const mine: HistoryItem = {
      x,
      y,
      color,
      userId: me?.userId ?? "you",
      username: me && !me.isGuest ? me.username : "you",
      placedAt: now,
      reverted: false,
      restore: false,
    };
    this.mine.set(PixelHistoryCache.key(x, y), mine);
    this.cache.set(x, y, withMine(this.cache.get(x, y, now) ?? [], mine), now);
    if (this.target && this.target.x === x && this.target.y === y) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      this.render(x, y, this.cache.get(x, y, now) ?? [mine]);
    }
  }

  /** A pixel changed (a delta, or this player's placement): its kept history is stale. */
  changed(x: number, y: number, color: number): void {
    const key = PixelHistoryCache.key(x, y);
    // The echo of this player's own placement: what the tooltip keeps is already right.
    const mine = this.mine.get(key);
    if (mine && mine.color === color && Date.now() - mine.placedAt < MINE_KEPT_MS) return;
    this.mine.delete(key);
    this.cache.invalidate(x, y);
    if (this.target && this.target.x === x && this.target.y === y && !this.tooltip.hidden) {
      // Shown now: ask again after a moment, several changes in a burst make one request.
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.show(), HOVER_DELAY_MS);
    }
  }

  /** Pixels whose history is kept (debug hook). */
  get cached(): number {
    return this.cache.size;
  }

  private async show(): Promise<void> {
    this.timer = null;
    const t = this.target;
    if (!t) return;
    let items: HistoryItem[];
    try {
      items = await this.fetchPixel(t.x, t.y);
    } catch (e) {
      console.warn("place: pixel history:", e);
      return;
    }
    const now = this.target;
    if (!now || now.x !== t.x || now.y !== t.y) return; // the pointer moved on meanwhile
    this.render(t.x, t.y, items);
  }

  private fetchPixel(x: number, y: number): Promise<HistoryItem[]> {
    const kept = this.cache.get(x, y, Date.now());
    if (kept) return Promise.resolve(kept);
    const key = PixelHistoryCache.key(x, y);
    let p = this.inFlight.get(key);
    if (!p) {
      p = fetch(`/api/v1/history/pixel?x=${x}&y=${y}&limit=${TOOLTIP_ITEMS}`, { credentials: "same-origin" })
        .then(async (res) => {
          if (!res.ok) throw new Error(`GET pixel history: ${res.status}`);
          let { items } = (await res.json()) as { items: HistoryItem[] };
          const mine = this.mine.get(key);
          if (mine && Date.now() - mine.placedAt < MINE_KEPT_MS) items = withMine(items, mine);
          else this.mine.delete(key);
          this.cache.set(x, y, items, Date.now());
          return items;
        })
        .finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, p);
    }
    return p;
  }

  private render(x: number, y: number, items: HistoryItem[]): void {
    const palette = this.hooks.palette();
    const now = Date.now();
    const me = this.hooks.me();
    const title = document.createElement("strong");
    title.textContent = `(${x}, ${y})`;
    const lines = items.map((p, i) => {
      const line = document.createElement("div");
      line.className = i === 0 ? "latest" : "older";
      line.classList.toggle("reverted", p.reverted);
      const swatch = document.createElement("i");
      swatch.style.background = palette[p.color] ?? "transparent";
      line.append(swatch, document.createTextNode(placementText(p, now, me)));
      line.title = new Date(p.placedAt).toLocaleString();
      return line;
    });
    if (items.length === 0) {
      const none = document.createElement("div");
      none.textContent = "Nobody has placed this pixel yet";
      lines.push(none);
    }
    const restrictions = this.hooks.restrictions(x, y).map((text) => {
      const line = document.createElement("div");
      line.className = "restricted";
      line.textContent = text;
      return line;
    });
    this.tooltip.replaceChildren(title, ...restrictions, ...lines);
    this.tooltip.hidden = false;
    this.place();
  }

  /** Puts the tooltip beside the target, inside the window. */
  private place(): void {
    const t = this.target;
    if (!t || this.tooltip.hidden) return;
    const w = this.tooltip.offsetWidth;
    const h = this.tooltip.offsetHeight;
    // Well clear of the cursor and of the pixels around it, where the player paints.
    const gap = 28;
    let left: number;
    let top: number;
    if (this.byFinger) {
      // Centred above the finger (a fingertip is about 40 px), below it if there is no room.
      left = Math.min(Math.max(8, t.sx - w / 2), window.innerWidth - 8 - w);
      top = t.sy - 48 - h;
      if (top < 8) top = t.sy + 48;
    } else {
      left = t.sx + gap;
      top = t.sy + gap;
      if (left + w > window.innerWidth - 8) left = Math.max(8, t.sx - gap - w);
      if (top + h > window.innerHeight - 8) top = Math.max(8, t.sy - gap - h);
    }
    this.tooltip.style.transform = `translate(${Math.round(left)}px, ${Math.round(top)}px)`;
  }

  setHeat(on: boolean): void {
    this.heatOn = on;
    this.heatButton.setAttribute("aria-pressed", String(on));
    if (this.heatTimer) clearTimeout(this.heatTimer);
    this.heatTimer = null;
    if (on) {
      void this.refreshHeat();
    } else {
      this.hooks.heat(null, 1);
      this.heatLayer = null;
      this.heatPanel.hidden = true;
    }
  }

  /** The heatmap's opacity: lower lets the canvas's own colours show through. */
  get opacity(): number {
    const v = Number(this.heatOpacity.value);
    return Number.isFinite(v) ? Math.min(1, Math.max(0.1, v)) : 0.6;
  }

  /** The window chosen, in minutes. */
  get minutes(): number {
    const m = Number(this.heatWindow.value);
    return (HEATMAP_WINDOWS as readonly number[]).includes(m) ? m : HEATMAP_MINUTES;
  }

  private async refreshHeat(): Promise<void> {
    if (this.heatTimer) clearTimeout(this.heatTimer);
    this.heatTimer = null;
    if (!this.heatOn) return;
    try {
      if (!document.hidden) {
        const minutes = this.minutes;
        const res = await fetch(`/api/v1/history/heatmap?minutes=${minutes}`, { credentials: "same-origin" });
        if (!res.ok) throw new Error(`GET heatmap: ${res.status}`);
        const h = (await res.json()) as Heatmap;
        if (this.heatOn && minutes === this.minutes) {
          this.heatLayer = heatLayer(h);
          this.hooks.heat(this.heatLayer, this.opacity);
          this.heatNote.textContent = heatmapText(h);
          this.heatPanel.hidden = false;
        }
      }
    } catch (e) {
      console.warn("place: heatmap:", e);
    } finally {
      if (this.heatOn) this.heatTimer = setTimeout(() => void this.refreshHeat(), HEATMAP_REFRESH_MS);
    }
  }
}
