// Draws the canvas with canvas 2D: one 64x64 offscreen bitmap per held tile,
// one width x height bitmap for overview mode. A frame redraws everything only
// when the view moved; otherwise only the tiles that changed.

import type { HeatLayer } from "./history";
import type { Placements } from "./placements";
import { TILE_SIZE } from "./protocol";
import type { HeldTile, TileListener } from "./tiles";
import { keyTx, keyTy, tileKey } from "./tiles";
import { visibleTiles, type Size, type View } from "./view";

/** Around the canvas: darker than any light canvas colour, so the edge shows at every zoom. */
const BACKGROUND = "#8e8e9b";
/** The line just outside the canvas's edge. */
const EDGE = "#2b2b36";
const PLACEHOLDER = "#ededf0";
/** Outlines of highlighted pixels (the admin panel): a light line inside a dark one. */
const HIGHLIGHT_OUTER = "#1d1d24";
const HIGHLIGHT_INNER = "#ff2bd6";
/** The frame of the rectangle the admin panel selected: dashed, over a dark line. */
const SELECTION = "#ffd400";
/** The outline of a protected region, by mode. */
const REGION_COLORS: Record<string, string> = { locked: "#e53935", slow: "#fb8c00", registered: "#1e88e5" };

type Surface = OffscreenCanvas | HTMLCanvasElement;

/** From this zoom up the template is drawn as dots (each a third of a pixel). */
const DOT_ZOOM = 6;
const DOT_BLOCK = 3;
/** Templates up to this many pixels get a dots bitmap (9 times their size); bigger ones draw dots one by one. */
const DOTS_SURFACE_MAX = 512 * 512;
type Surface2D = OffscreenCanvasRenderingContext2D | CanvasRenderingContext2D;

interface Bitmap {
  img: ImageData;
  words: Uint32Array<ArrayBuffer>;
  surface: Surface;
  ctx: Surface2D;
  dirty: boolean;
}

function makeBitmap(w: number, h: number): Bitmap {
  const surface: Surface =
    typeof OffscreenCanvas !== "undefined" ? new OffscreenCanvas(w, h) : Object.assign(document.createElement("canvas"), { width: w, height: h });
  const ctx = surface.getContext("2d", { alpha: false }) as Surface2D | null;
  if (!ctx) throw new Error("no 2d context");
  const img = new ImageData(w, h);
  return { img, words: new Uint32Array(img.data.buffer as ArrayBuffer), surface, ctx, dirty: true };
}

/** A surface holding `img` with its alpha. */
function bitmapWithAlpha(w: number, h: number, img: ImageData): Surface {
  const surface: Surface =
    typeof OffscreenCanvas !== "undefined" ? new OffscreenCanvas(w, h) : Object.assign(document.createElement("canvas"), { width: w, height: h });
  const ctx = surface.getContext("2d") as Surface2D | null;
  if (!ctx) throw new Error("no 2d context");
  ctx.putImageData(img, 0, 0);
  return surface;
}

function upload(b: Bitmap): void {
  if (!b.dirty) return;
  b.ctx.putImageData(b.img, 0, 0);
  b.dirty = false;
}

export type Mode = "tiles" | "overview";

export class Renderer implements TileListener {
  private ctx: CanvasRenderingContext2D;
  private table: Uint32Array = new Uint32Array(256);
  private bitmaps = new Map<number, Bitmap>();
  /** Bitmaps of dropped tiles, reused: making a canvas costs more than filling one. */
  private spare: Bitmap[] = [];
  private dirtyTiles = new Set<number>();
  private overview: { data: Uint8Array; bitmap: Bitmap } | null = null;
  private overviewDirty = false;
  private viewDirty = true;
  private frameRequested = false;
  private view: View = { cx: 0, cy: 0, zoom: 1 };
  private size: Size = { width: 1, height: 1 };
  private dpr = 1;
  private width = 0;
  private height = 0;
  mode: Mode = "tiles";
  /** Frames drawn (for the benchmark and tests). */
  frames = 0;
  /** Pixels outlined over the canvas (an administrator's view of one user's placements). */
  private highlights: readonly { x: number; y: number }[] = [];
  private selection: { x: number; y: number; width: number; height: number } | null = null;
  /** Protected regions, outlined by mode. */
  private regions: readonly { x: number; y: number; width: number; height: number; mode: string }[] = [];
  /**
   * The template laid over the canvas: its image (transparent where it is not part of it) and
   * the same with each pixel a dot in the middle of a 3x3 block, for high zooms.
   */
  private template: {
    x: number;
    y: number;
    width: number;
    height: number;
    img: ImageData;
    plain: Surface;
    dots: Surface | null;
    opacity: number;
  } | null = null;
  /** The heatmap laid over the canvas, one pixel per cell, or null. */
  private heat: { layer: HeatLayer; surface: Surface; opacity: number } | null = null;
  /** Called after each drawn frame with its duration in ms. */
  onFrame: ((ms: number) => void) | null = null;

  constructor(
    private canvas: HTMLCanvasElement,
    /** Optimistic placements, drawn above the server's truth. */
    private placements: Placements,
  ) {
    const ctx = canvas.getContext("2d", { alpha: false });
    if (!ctx) throw new Error("no 2d context");
    this.ctx = ctx;
  }

  setCanvas(width: number, height: number, table: Uint32Array): void {
    // The overview was of another size: the next fetch brings one of this size.
    if (width !== this.width || height !== this.height) this.overview = null;
    this.width = width;
    this.height = height;
    this.table = table;
    for (const b of this.bitmaps.values()) b.dirty = true;
    this.viewDirty = true;
    this.request();
  }

  setView(view: View, size: Size, dpr: number): void {
    this.view = view;
    this.size = size;
    if (dpr !== this.dpr || this.canvas.width !== Math.round(size.width * dpr) || this.canvas.height !== Math.round(size.height * dpr)) {
      this.dpr = dpr;
      this.canvas.width = Math.round(size.width * dpr);
      this.canvas.height = Math.round(size.height * dpr);
    }
    this.viewDirty = true;
    this.request();
  }

  setMode(mode: Mode): void {
    if (mode === this.mode) return;
    this.mode = mode;
    this.viewDirty = true;
    this.request();
  }

  /** Outlines these pixels over the canvas (empty: none). */
  setHighlights(pixels: readonly { x: number; y: number }[]): void {
    this.highlights = pixels;
    this.viewDirty = true;
    this.request();
  }

  get highlightCount(): number {
    return this.highlights.length;
  }

  /** Frames this rectangle of the canvas (null: none). */
  setSelection(rect: { x: number; y: number; width: number; height: number } | null): void {
    this.selection = rect;
    this.viewDirty = true;
    this.request();
  }

  get selected(): { x: number; y: number; width: number; height: number } | null {
    return this.selection;
  }

  /** Outlines these protected regions (empty: none). */
  setRegions(regions: readonly { x: number; y: number; width: number; height: number; mode: string }[]): void {
    this.regions = regions;
    this.viewDirty = true;
    this.request();
  }

  /** Lays a heatmap over the canvas (null: none). */
  setHeat(layer: HeatLayer | null, opacity = 1): void {
    if (!layer) {
      this.heat = null;
    } else {
      // Translucent cells: a surface with alpha, unlike the tiles' bitmaps.
      const surface = bitmapWithAlpha(layer.columns, layer.rows, new ImageData(layer.rgba, layer.columns, layer.rows));
      this.heat = { layer, surface, opacity };
    }
    this.viewDirty = true;
    this.request();
  }

  /** Lays a template over the canvas (null: none): `img` is its RGBA image. */
  setTemplate(t: { x: number; y: number; img: ImageData; opacity: number } | null): void {
    if (!t) {
      this.template = null;
    } else {
      const { width, height } = t.img;
      let dots: Surface | null = null;
      if (width * height <= DOTS_SURFACE_MAX) {
        const dotImg = new ImageData(width * DOT_BLOCK, height * DOT_BLOCK);
        const src = new Uint32Array(t.img.data.buffer);
        const dst = new Uint32Array(dotImg.data.buffer);
        const mid = (DOT_BLOCK - 1) / 2;
        for (let y = 0; y < height; y++) {
          for (let x = 0; x < width; x++) dst[(y * DOT_BLOCK + mid) * width * DOT_BLOCK + x * DOT_BLOCK + mid] = src[y * width + x];
        }
        dots = bitmapWithAlpha(width * DOT_BLOCK, height * DOT_BLOCK, dotImg);
      }
      this.template = { x: t.x, y: t.y, width, height, img: t.img, plain: bitmapWithAlpha(width, height, t.img), dots, opacity: t.opacity };
    }
    this.viewDirty = true;
    this.request();
  }

  get templateShown(): boolean {
    return this.template !== null;
  }

  /**
   * The template: translucent at low zooms; at high zooms a dot of its colour in the middle of
   * each pixel, so the canvas's colour around the dot shows whether that pixel is right.
   */
  private drawTemplate(): void {
    const t = this.template;
    if (!t) return;
    const ctx = this.ctx;
    const dest = this.rect(t.x, t.y, t.width, t.height);
    ctx.imageSmoothingEnabled = false;
    ctx.globalAlpha = t.opacity;
    if (this.view.zoom < DOT_ZOOM) ctx.drawImage(t.plain, ...dest);
    else if (t.dots) ctx.drawImage(t.dots, ...dest);
    else this.drawDots(t);
    ctx.globalAlpha = 1;
  }

  /** Dots of a template too big for a dots bitmap: the visible pixels only (few at a high zoom). */
  private drawDots(t: { x: number; y: number; width: number; height: number; img: ImageData }): void {
    const z = this.view.zoom;
    const x0 = Math.max(t.x, Math.floor(this.view.cx - this.size.width / 2 / z));
    const y0 = Math.max(t.y, Math.floor(this.view.cy - this.size.height / 2 / z));
    const x1 = Math.min(t.x + t.width, Math.ceil(this.view.cx + this.size.width / 2 / z));
    const y1 = Math.min(t.y + t.height, Math.ceil(this.view.cy + this.size.height / 2 / z));
    const d = t.img.data;
    for (let y = y0; y < y1; y++) {
      for (let x = x0; x < x1; x++) {
        const i = ((y - t.y) * t.width + (x - t.x)) * 4;
        if (d[i + 3] === 0) continue;
        this.ctx.fillStyle = `rgb(${d[i]},${d[i + 1]},${d[i + 2]})`;
        const [rx, ry, rw, rh] = this.rect(x + 1 / DOT_BLOCK, y + 1 / DOT_BLOCK, 1 / DOT_BLOCK, 1 / DOT_BLOCK);
        this.ctx.fillRect(rx, ry, rw, rh);
      }
    }
  }

  get heatShown(): boolean {
    return this.heat !== null;
  }

  // ---- TileListener ----

  tileReplaced(t: HeldTile): void {
    let b = this.bitmaps.get(t.key);
    if (!b) {
      b = this.spare.pop() ?? makeBitmap(TILE_SIZE, TILE_SIZE);
      this.bitmaps.set(t.key, b);
    }
    const { words } = b;
    for (let i = 0; i < words.length; i++) words[i] = this.table[t.data[i]];
    this.applyOverlays(t.tx, t.ty, b);
    this.markTile(t.key, b);
  }

  pixelChanged(t: HeldTile, lx: number, ly: number, color: number): void {
    const b = this.bitmaps.get(t.key);
    if (!b) return;
    const x = t.tx * TILE_SIZE + lx;
    const y = t.ty * TILE_SIZE + ly;
    b.words[ly * TILE_SIZE + lx] = this.table[this.overlayAt(x, y) ?? color];
    this.markTile(t.key, b);
  }

  tileDropped(key: number): void {
    const b = this.bitmaps.get(key);
    if (b && this.spare.length < 64) this.spare.push(b);
    this.bitmaps.delete(key);
    this.dirtyTiles.delete(key);
    this.viewDirty = true;
    this.request();
  }

  // ---- overview ----

  /** A fresh whole-canvas snapshot (width*height palette indices). */
  setOverview(data: Uint8Array): void {
    if (data.length !== this.width * this.height) return;
    if (!this.overview) this.overview = { data, bitmap: makeBitmap(this.width, this.height) };
    this.overview.data = data;
    const words = this.overview.bitmap.words;
    for (let i = 0; i < words.length; i++) words[i] = this.table[data[i]];
    for (const p of this.placements.all()) words[p.y * this.width + p.x] = this.table[p.color];
    this.overview.bitmap.dirty = true;
    this.overviewDirty = true;
    this.request();
  }

  /** Redraws one pixel from truth and overlay (after a placement or its rollback). */
  refreshPixel(x: number, y: number, truth: number | undefined): void {
    const tx = Math.floor(x / TILE_SIZE);
    const ty = Math.floor(y / TILE_SIZE);
    const key = tileKey(tx, ty);
    const b = this.bitmaps.get(key);
    const ov = this.overlayAt(x, y);
    if (b && (ov ?? truth) !== undefined) {
      b.words[(y - ty * TILE_SIZE) * TILE_SIZE + (x - tx * TILE_SIZE)] = this.table[(ov ?? truth)!];
      this.markTile(key, b);
    }
    if (this.overview) {
      const i = y * this.width + x;
      this.overview.bitmap.words[i] = this.table[ov ?? this.overview.data[i]];
      this.overview.bitmap.dirty = true;
      this.overviewDirty = true;
      this.request();
    }
  }

  /** Sets a pixel of the overview's truth (a placement confirmed while in overview mode). */
  setOverviewPixel(x: number, y: number, color: number): void {
    if (!this.overview) return;
    this.overview.data[y * this.width + x] = color;
  }

  /** The colour shown at a canvas pixel, as palette index (tests, the pointer panel). */
  shownIndex(x: number, y: number, truth: number | undefined): number | undefined {
    const ov = this.overlayAt(x, y);
    if (ov !== undefined) return ov;
    if (this.mode === "tiles" && truth !== undefined) return truth;
    return this.overview?.data[y * this.width + x] ?? truth;
  }

  // ---- frames ----

  request(): void {
    if (this.frameRequested) return;
    this.frameRequested = true;
    requestAnimationFrame(() => this.frame());
  }

  private markTile(key: number, b: Bitmap): void {
    b.dirty = true;
    this.dirtyTiles.add(key);
    this.request();
  }

  private overlayAt(x: number, y: number): number | undefined {
    return this.placements.size === 0 ? undefined : this.placements.colorAt(x, y);
  }

  private applyOverlays(tx: number, ty: number, b: Bitmap): void {
    for (const p of this.placements.all()) {
      if (Math.floor(p.x / TILE_SIZE) === tx && Math.floor(p.y / TILE_SIZE) === ty) {
        b.words[(p.y - ty * TILE_SIZE) * TILE_SIZE + (p.x - tx * TILE_SIZE)] = this.table[p.color];
      }
    }
  }

  /** Device-pixel rectangle of a canvas-pixel rectangle, edges rounded so neighbours never leave seams. */
  private rect(x: number, y: number, w: number, h: number): [number, number, number, number] {
    const z = this.view.zoom * this.dpr;
    const ox = this.canvas.width / 2 - this.view.cx * z;
    const oy = this.canvas.height / 2 - this.view.cy * z;
    const x0 = Math.round(ox + x * z);
    const y0 = Math.round(oy + y * z);
    return [x0, y0, Math.round(ox + (x + w) * z) - x0, Math.round(oy + (y + h) * z) - y0];
  }

  private frame(): void {
    this.frameRequested = false;
    if (this.width === 0) return;
    const t0 = performance.now();
    const ctx = this.ctx;
    ctx.imageSmoothingEnabled = false;
    const range = visibleTiles(this.view, this.size, this.width, this.height, TILE_SIZE);
    // Outlines reach past their tile and the heatmap lies over all: with either shown, a
    // changed tile redraws the whole view.
    const outlined = this.highlights.length > 0 || this.selection !== null || this.regions.length > 0;
    const covered = outlined || this.heat !== null || this.template !== null;
    if (this.viewDirty || (this.mode === "overview" && this.overviewDirty) || (covered && this.dirtyTiles.size > 0)) {
      this.drawAll(range);
    } else {
      for (const key of this.dirtyTiles) {
        const tx = keyTx(key);
        const ty = keyTy(key);
        if (tx < range.tx0 || tx > range.tx1 || ty < range.ty0 || ty > range.ty1) continue;
        this.drawTile(tx, ty);
      }
    }
    if (this.template) this.drawTemplate();
    if (this.heat) this.drawHeat(range);
    if (this.regions.length > 0) this.drawRegions();
    if (outlined) this.drawHighlights();
    if (this.selection) this.drawSelection(this.selection);
    this.dirtyTiles.clear();
    this.viewDirty = false;
    this.overviewDirty = false;
    this.frames++;
    this.onFrame?.(performance.now() - t0);
  }

  private drawAll(range: ReturnType<typeof visibleTiles>): void {
    const ctx = this.ctx;
    ctx.fillStyle = BACKGROUND;
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    const [ex, ey, ew, eh] = this.rect(0, 0, this.width, this.height);
    const d = this.dpr;
    ctx.lineWidth = 2 * d;
    ctx.strokeStyle = EDGE;
    ctx.strokeRect(ex - d, ey - d, ew + 2 * d, eh + 2 * d);
    if (this.mode === "overview" && this.overview) {
      upload(this.overview.bitmap);
      // Only the visible part of the big bitmap is scaled.
      const x0 = range.tx0 * TILE_SIZE;
      const y0 = range.ty0 * TILE_SIZE;
      const w = Math.min(this.width, (range.tx1 + 1) * TILE_SIZE) - x0;
      const h = Math.min(this.height, (range.ty1 + 1) * TILE_SIZE) - y0;
      if (w > 0 && h > 0) ctx.drawImage(this.overview.bitmap.surface, x0, y0, w, h, ...this.rect(x0, y0, w, h));
      return;
    }
    for (let ty = range.ty0; ty <= range.ty1; ty++) for (let tx = range.tx0; tx <= range.tx1; tx++) this.drawTile(tx, ty);
  }

  /** The visible cells of the heatmap, each stretched over its square of the canvas, blurred a little. */
  private drawHeat(range: ReturnType<typeof visibleTiles>): void {
    if (!this.heat) return;
    const { layer, surface, opacity } = this.heat;
    const c = layer.cellSize;
    const cx0 = Math.floor((range.tx0 * TILE_SIZE) / c);
    const cy0 = Math.floor((range.ty0 * TILE_SIZE) / c);
    const cx1 = Math.min(layer.columns, Math.ceil(((range.tx1 + 1) * TILE_SIZE) / c));
    const cy1 = Math.min(layer.rows, Math.ceil(((range.ty1 + 1) * TILE_SIZE) / c));
    if (cx1 <= cx0 || cy1 <= cy0) return;
    const ctx = this.ctx;
    ctx.imageSmoothingEnabled = c > 1;
    ctx.globalAlpha = opacity;
    ctx.drawImage(surface, cx0, cy0, cx1 - cx0, cy1 - cy0, ...this.rect(cx0 * c, cy0 * c, (cx1 - cx0) * c, (cy1 - cy0) * c));
    ctx.globalAlpha = 1;
    ctx.imageSmoothingEnabled = false;
  }

  /** A frame around each highlighted pixel, outside it so the pixel's colour stays visible. */
  private drawHighlights(): void {
    const ctx = this.ctx;
    const d = this.dpr;
    for (const [color, width, grow] of [
      [HIGHLIGHT_OUTER, 4 * d, 3 * d],
      [HIGHLIGHT_INNER, 2 * d, 3 * d],
    ] as const) {
      ctx.strokeStyle = color;
      ctx.lineWidth = width;
      ctx.beginPath();
      for (const p of this.highlights) {
        const [x, y, w, h] = this.rect(p.x, p.y, 1, 1);
        if (x + w < -grow || y + h < -grow || x > this.canvas.width + grow || y > this.canvas.height + grow) continue;
        ctx.rect(x - grow, y - grow, w + 2 * grow, h + 2 * grow);
      }
      ctx.stroke();
    }
  }

  /** Each protected region: a dark line under a dashed line of its mode's colour, on its edge. */
  private drawRegions(): void {
    const ctx = this.ctx;
    const d = this.dpr;
    for (const r of this.regions) {
      const [x, y, w, h] = this.rect(r.x, r.y, r.width, r.height);
      if (x + w < 0 || y + h < 0 || x > this.canvas.width || y > this.canvas.height) continue;
      ctx.lineWidth = 3 * d;
      ctx.strokeStyle = HIGHLIGHT_OUTER;
      ctx.setLineDash([]);
      ctx.strokeRect(x, y, w, h);
      ctx.lineWidth = 2 * d;
      ctx.strokeStyle = REGION_COLORS[r.mode] ?? SELECTION;
      ctx.setLineDash([8 * d, 4 * d]);
      ctx.strokeRect(x, y, w, h);
    }
    ctx.setLineDash([]);
  }

  /** A frame just outside the selected rectangle: a dark line under a dashed bright one. */
  private drawSelection(r: { x: number; y: number; width: number; height: number }): void {
    const ctx = this.ctx;
    const d = this.dpr;
    const [x, y, w, h] = this.rect(r.x, r.y, r.width, r.height);
    const grow = 2 * d;
    ctx.lineWidth = 3 * d;
    ctx.strokeStyle = HIGHLIGHT_OUTER;
    ctx.setLineDash([]);
    ctx.strokeRect(x - grow, y - grow, w + 2 * grow, h + 2 * grow);
    ctx.lineWidth = 2 * d;
    ctx.strokeStyle = SELECTION;
    ctx.setLineDash([6 * d, 4 * d]);
    ctx.strokeRect(x - grow, y - grow, w + 2 * grow, h + 2 * grow);
    ctx.setLineDash([]);
  }

  private drawTile(tx: number, ty: number): void {
    const x0 = tx * TILE_SIZE;
    const y0 = ty * TILE_SIZE;
    const w = Math.min(TILE_SIZE, this.width - x0);
    const h = Math.min(TILE_SIZE, this.height - y0);
    const dest = this.rect(x0, y0, w, h);
    const b = this.bitmaps.get(tileKey(tx, ty));
    if (b) {
      upload(b);
      this.ctx.drawImage(b.surface, 0, 0, w, h, ...dest);
    } else if (this.overview) {
      // Not loaded yet: the last overview stands in until the snapshot lands.
      upload(this.overview.bitmap);
      this.ctx.drawImage(this.overview.bitmap.surface, x0, y0, w, h, ...dest);
    } else {
      this.ctx.fillStyle = PLACEHOLDER;
      this.ctx.fillRect(...dest);
    }
  }
}
