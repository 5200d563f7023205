// The minimap: the whole canvas, small, in a corner, with the rectangle of the
// current view drawn on it; a click (or tap) there jumps the view to that
// point. Its picture is the whole-canvas image (GET /api/v1/canvas, asked for
// again every MINIMAP_REFRESH_MS while the tab is visible, or handed over by
// the overview), with live pixel changes painted on between refreshes.

import { el } from "./ui";

/** The whole picture is asked for again this often (live changes are painted on meanwhile). */
export const MINIMAP_REFRESH_MS = 30_000;
/** The longest side of the minimap in CSS px (less on narrow screens, see style.css). */
const SIDE_PX = 180;

/** The canvas rectangle a view shows, in canvas pixels. */
export interface ViewRect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * The canvas point under minimap point (mx, my) of a minimap `side` CSS px on its longest
 * side, kept inside the canvas.
 */
export function minimapToCanvas(mx: number, my: number, mapW: number, mapH: number, w: number, h: number): { x: number; y: number } {
  return {
    x: Math.min(w - 1, Math.max(0, Math.floor((mx / mapW) * w))),
    y: Math.min(h - 1, Math.max(0, Math.floor((my / mapH) * h))),
  };
}

/** The minimap's size in CSS px for a canvas, its longest side `side`. */
export function minimapSize(w: number, h: number, side = SIDE_PX): { width: number; height: number } {
  const k = side / Math.max(w, h);
  return { width: Math.max(1, Math.round(w * k)), height: Math.max(1, Math.round(h * k)) };
}

export class Minimap {
  private canvas = el<HTMLCanvasElement>("minimap");
  private ctx: CanvasRenderingContext2D;
  /** The whole canvas at one pixel per canvas pixel. */
  private picture: { img: ImageData; words: Uint32Array<ArrayBuffer>; surface: HTMLCanvasElement } | null = null;
  private table: Uint32Array = new Uint32Array(256);
  private width = 0;
  private height = 0;
  private view: ViewRect | null = null;
  private dirty = false;
  private drawRequested = false;
  private etag: string | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;

  /**
   * `jump` moves the view's centre to a canvas point; `fetched` gets each whole-canvas image
   * this map fetched (width*height palette indices).
   */
  constructor(
    private jump: (x: number, y: number) => void,
    private fetched: (data: Uint8Array) => void = () => {},
  ) {
    const ctx = this.canvas.getContext("2d");
    if (!ctx) throw new Error("no 2d context");
    this.ctx = ctx;
    this.canvas.addEventListener("pointerdown", (e) => {
      if (this.width === 0) return;
      e.preventDefault();
      const r = this.canvas.getBoundingClientRect();
      const p = minimapToCanvas(e.clientX - r.left, e.clientY - r.top, r.width, r.height, this.width, this.height);
      this.jump(p.x, p.y);
    });
  }

  /** The canvas's size and colours (a palette table as the renderer's). */
  setCanvas(width: number, height: number, table: Uint32Array): void {
    const fresh = width !== this.width || height !== this.height;
    this.width = width;
    this.height = height;
    this.table = table;
    if (fresh) {
      const surface = Object.assign(document.createElement("canvas"), { width, height });
      const img = new ImageData(width, height);
      const words = new Uint32Array(img.data.buffer as ArrayBuffer);
      words.fill(table[0]);
      // A grown canvas keeps what the map showed: every pixel stays at its coordinates.
      const before = this.picture;
      if (before && before.img.width <= width && before.img.height <= height) {
        const w = before.img.width;
        for (let y = 0; y < before.img.height; y++) words.set(before.words.subarray(y * w, (y + 1) * w), y * width);
      }
      this.picture = { img, words, surface };
      this.etag = null;
      this.resize();
      // After the first tiles: the page paints first, then the map fills in.
      if (this.timer) clearTimeout(this.timer);
      this.timer = setTimeout(() => void this.refresh(), 1000);
    }
  }

  /** Sizes the minimap for the window (CSS decides the side, the bitmap follows it). */
  resize(): void {
    if (this.width === 0) return;
    const side = window.innerWidth < 560 ? 112 : SIDE_PX;
    const { width, height } = minimapSize(this.width, this.height, side);
    const dpr = window.devicePixelRatio || 1;
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${height}px`;
    this.canvas.width = Math.round(width * dpr);
    this.canvas.height = Math.round(height * dpr);
    this.dirty = true;
    this.request();
  }

  /** A whole-canvas image (width*height palette indices), from the overview or our own fetch. */
  setImage(data: Uint8Array): void {
    if (!this.picture || data.length !== this.width * this.height) return;
    const words = this.picture.words;
    for (let i = 0; i < words.length; i++) words[i] = this.table[data[i]];
    this.dirty = true;
    this.request();
  }

  /** One pixel changed (live). */
  setPixel(x: number, y: number, color: number): void {
    if (!this.picture || x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    this.picture.words[y * this.width + x] = this.table[color];
    this.dirty = true;
    this.request();
  }

  setView(rect: ViewRect): void {
    this.view = rect;
    this.request();
  }

  private request(): void {
    if (this.drawRequested) return;
    this.drawRequested = true;
    requestAnimationFrame(() => this.draw());
  }

  private draw(): void {
    this.drawRequested = false;
    const pic = this.picture;
    if (!pic) return;
    if (this.dirty) {
      pic.surface.getContext("2d")?.putImageData(pic.img, 0, 0);
      this.dirty = false;
    }
    const ctx = this.ctx;
    const cw = this.canvas.width;
    const ch = this.canvas.height;
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(pic.surface, 0, 0, cw, ch);
    if (!this.view) return;
    const k = cw / this.width;
    const x = Math.max(0, this.view.x * k);
    const y = Math.max(0, this.view.y * k);
    const w = Math.min(cw, (this.view.x + this.view.width) * k) - x;
    const h = Math.min(ch, (this.view.y + this.view.height) * k) - y;
    const d = window.devicePixelRatio || 1;
    // At least a few px, so the view stays visible at the highest zooms.
    const mw = Math.max(w, 4 * d);
    const mh = Math.max(h, 4 * d);
    const mx = x - (mw - w) / 2;
    const my = y - (mh - h) / 2;
    ctx.lineWidth = 3 * d;
    ctx.strokeStyle = "rgba(0, 0, 0, 0.8)";
    ctx.strokeRect(mx, my, mw, mh);
    ctx.lineWidth = 1.5 * d;
    ctx.strokeStyle = "#ff2bd6";
    ctx.strokeRect(mx, my, mw, mh);
  }

  /** Fetches the whole canvas (if changed) and asks again later. */
  async refresh(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh(), MINIMAP_REFRESH_MS);
    if (document.hidden || this.width === 0) return;
    try {
      const res = await fetch("/api/v1/canvas", { headers: this.etag ? { "If-None-Match": this.etag } : {}, credentials: "same-origin" });
      if (res.status === 200) {
        this.etag = res.headers.get("ETag");
        const data = new Uint8Array(await res.arrayBuffer());
        this.setImage(data);
        this.fetched(data);
      }
    } catch (e) {
      console.warn("place: minimap:", e);
    }
  }
}
