// The player's remembered choices (colour, sound), kept in localStorage, and
// the first colour of a visit. Pure rules, tested in tests/unit.

/** A remembered choice, or null (none, or no storage in private mode). */
export function remembered(key: string): string | null {
  try {
    return localStorage.getItem(`place.${key}`);
  } catch {
    return null;
  }
}

export function remember(key: string, value: string): void {
  try {
    localStorage.setItem(`place.${key}`, value);
  } catch {
    /* private mode: forgotten on reload */
  }
}

/** How a colour choice is remembered: its index and value, so another palette does not reuse it. */
export function colorChoice(index: number, palette: readonly string[]): string {
  return `${index}:${palette[index]}`;
}

/** The first brush: the remembered colour if this palette still has it there, else the darkest. */
export function initialColor(palette: readonly string[], stored: string | null): number {
  const m = stored === null ? null : /^(\d+):(.*)$/.exec(stored);
  if (m) {
    const i = Number(m[1]);
    if (i < palette.length && palette[i].toLowerCase() === m[2].toLowerCase()) return i;
  }
  return darkest(palette);
}

/**
 * The index of the darkest palette colour by its brightest channel, so black wins over a
 * saturated blue (whose luma is lower than a dark grey's).
 */
export function darkest(palette: readonly string[]): number {
  let best = 0;
  let bestV = Infinity;
  palette.forEach((c, i) => {
    const m = /^#?([0-9a-f]{6})$/i.exec(c.trim());
    if (!m) return;
    const n = parseInt(m[1], 16);
    const v = Math.max(n >> 16, (n >> 8) & 255, n & 255);
    if (v < bestV) {
      bestV = v;
      best = i;
    }
  });
  return best;
}
