// Palette colours as the 32-bit words an ImageData's Uint32Array view wants.

/** "#rrggbb" (or "#rgb") to a little-endian RGBA word (0xAABBGGRR); magenta when unreadable. */
export function parseColor(hex: string): number {
  let h = hex.trim().replace(/^#/, "");
  if (h.length === 3) h = h.replace(/./g, "$&$&");
  if (!/^[0-9a-fA-F]{6}$/.test(h)) return 0xffff00ff;
  const n = parseInt(h, 16);
  const r = (n >> 16) & 0xff;
  const g = (n >> 8) & 0xff;
  const b = n & 0xff;
  return ((0xff << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

/**
 * Lookup table from palette index (0..255) to RGBA word; indices beyond the
 * palette show as the first colour so hostile data cannot read out of bounds.
 */
export function paletteTable(palette: readonly string[]): Uint32Array {
  const table = new Uint32Array(256);
  const words = palette.map(parseColor);
  for (let i = 0; i < 256; i++) table[i] = words[i] ?? words[0] ?? 0xffffffff;
  return table;
}
