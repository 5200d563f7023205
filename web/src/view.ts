// View maths: where the canvas sits on the screen. Pure functions, no DOM.
//
// A view is the canvas point at the centre of the viewport (cx, cy, in canvas
// pixels, fractional) and a zoom (CSS px per canvas px). Screen coordinates
// are CSS px from the viewport's top-left corner.

export interface View {
  cx: number;
  cy: number;
  zoom: number;
}

export interface Size {
  width: number;
  height: number;
}

/** Inclusive range of tiles. Empty when tx1 < tx0 or ty1 < ty0. */
export interface TileRange {
  tx0: number;
  ty0: number;
  tx1: number;
  ty1: number;
}

export const MAX_ZOOM = 64;
/** Zoom without a hash in the URL: big enough to see single pixels. */
export const DEFAULT_ZOOM = 4;

export function screenToCanvas(v: View, s: Size, sx: number, sy: number): { x: number; y: number } {
  return { x: v.cx + (sx - s.width / 2) / v.zoom, y: v.cy + (sy - s.height / 2) / v.zoom };
}

export function canvasToScreen(v: View, s: Size, x: number, y: number): { x: number; y: number } {
  return { x: (x - v.cx) * v.zoom + s.width / 2, y: (y - v.cy) * v.zoom + s.height / 2 };
}

/** The canvas pixel under a screen point, or null outside the canvas. */
export function pixelAt(v: View, s: Size, sx: number, sy: number, w: number, h: number): { x: number; y: number } | null {
  const p = screenToCanvas(v, s, sx, sy);
  const x = Math.floor(p.x);
  const y = Math.floor(p.y);
  return x >= 0 && y >= 0 && x < w && y < h ? { x, y } : null;
}

/** The smallest zoom: the whole canvas fits in the viewport with a little room. */
export function minZoom(s: Size, w: number, h: number): number {
  return Math.min(1, 0.9 * Math.min(s.width / w, s.height / h));
}

/** Keeps a zoom within [minZoom, MAX_ZOOM]. */
export function clampZoom(zoom: number, s: Size, w: number, h: number): number {
  return Math.min(MAX_ZOOM, Math.max(minZoom(s, w, h), zoom));
}

/**
 * Keeps the zoom within bounds and enough of the canvas on screen: all of it,
 * centred, when it fits, and at least half the viewport when zoomed far in (so
 * an edge pixel can still be brought to the centre), blending between the two.
 */
export function clampView(v: View, s: Size, w: number, h: number): View {
  const zoom = clampZoom(v.zoom, s, w, h);
  return { cx: clampAxis(v.cx, s.width, w, zoom), cy: clampAxis(v.cy, s.height, h, zoom), zoom };
}

/** One axis of clampView: `c` is the canvas coordinate at the viewport centre. */
function clampAxis(c: number, viewPx: number, canvasPx: number, zoom: number): number {
  const extent = canvasPx * zoom;
  let lo: number; // bounds of the canvas edge's screen position
  let hi: number;
  if (extent <= viewPx) {
    lo = hi = (viewPx - extent) / 2; // it fits: centred
  } else {
    // How much of the viewport the canvas must cover.
    const cover = Math.max(viewPx / 2, viewPx - (extent - viewPx) / 2);
    lo = cover - extent;
    hi = viewPx - cover;
  }
  const edge = Math.min(hi, Math.max(lo, viewPx / 2 - c * zoom));
  return (viewPx / 2 - edge) / zoom;
}

/** Moves the view by a screen distance: content follows the pointer. */
export function panBy(v: View, dx: number, dy: number): View {
  return { cx: v.cx - dx / v.zoom, cy: v.cy - dy / v.zoom, zoom: v.zoom };
}

/** Zooms to `zoom` keeping the canvas point under (sx, sy) where it is. */
export function zoomAt(v: View, s: Size, sx: number, sy: number, zoom: number): View {
  const p = screenToCanvas(v, s, sx, sy);
  return { cx: p.x - (sx - s.width / 2) / zoom, cy: p.y - (sy - s.height / 2) / zoom, zoom };
}

/** Tiles touching the viewport, widened by `margin` tiles and clamped to the canvas. */
export function visibleTiles(v: View, s: Size, w: number, h: number, tileSize: number, margin = 0): TileRange {
  const x0 = v.cx - s.width / 2 / v.zoom;
  const x1 = v.cx + s.width / 2 / v.zoom;
  const y0 = v.cy - s.height / 2 / v.zoom;
  const y1 = v.cy + s.height / 2 / v.zoom;
  const tilesX = Math.ceil(w / tileSize);
  const tilesY = Math.ceil(h / tileSize);
  if (x1 <= 0 || y1 <= 0 || x0 >= w || y0 >= h) return { tx0: 0, ty0: 0, tx1: -1, ty1: -1 };
  return {
    tx0: Math.max(0, Math.floor(x0 / tileSize) - margin),
    ty0: Math.max(0, Math.floor(y0 / tileSize) - margin),
    tx1: Math.min(tilesX - 1, Math.ceil(x1 / tileSize) - 1 + margin),
    ty1: Math.min(tilesY - 1, Math.ceil(y1 / tileSize) - 1 + margin),
  };
}

export function rangeCount(r: TileRange): number {
  return Math.max(0, r.tx1 - r.tx0 + 1) * Math.max(0, r.ty1 - r.ty0 + 1);
}

/** The view of a fresh visit without a hash: the canvas centre, pixels visible. */
export function defaultView(s: Size, w: number, h: number): View {
  return clampView({ cx: w / 2, cy: h / 2, zoom: DEFAULT_ZOOM }, s, w, h);
}

/** Parses `#x=X&y=Y&zoom=Z` (any order, zoom optional). Null when x or y is missing or bad. */
export function parseHash(hash: string): { x: number; y: number; zoom?: number } | null {
  const params = new URLSearchParams(hash.replace(/^#/, ""));
  const num = (k: string): number | undefined => {
    const raw = params.get(k);
    if (raw === null || raw.trim() === "") return undefined;
    const n = Number(raw);
    return Number.isFinite(n) ? n : undefined;
  };
  const x = num("x");
  const y = num("y");
  if (x === undefined || y === undefined) return null;
  const zoom = num("zoom");
  return zoom !== undefined && zoom > 0 ? { x, y, zoom } : { x, y };
}

/** The view a hash asks for: pixel (X, Y) at the viewport centre. */
export function viewFromHash(hash: string, s: Size, w: number, h: number): View | null {
  const p = parseHash(hash);
  if (!p) return null;
  return clampView({ cx: Math.floor(p.x) + 0.5, cy: Math.floor(p.y) + 0.5, zoom: p.zoom ?? DEFAULT_ZOOM }, s, w, h);
}

export function formatHash(v: View): string {
  const zoom = Math.round(v.zoom * 100) / 100;
  return `#x=${Math.floor(v.cx)}&y=${Math.floor(v.cy)}&zoom=${zoom}`;
}
