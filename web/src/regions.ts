// Protected regions as players see them: an outline on the canvas per region
// (GET /api/v1/regions, read every REGIONS_REFRESH_MS and at once after a
// placement refused for a region), and the reason in the pixel tooltip.

/** A region as GET /api/v1/regions lists it. */
export interface Region {
  id: string;
  x: number;
  y: number;
  width: number;
  height: number;
  mode: "locked" | "slow" | "registered";
  cooldownSeconds: number | null;
  until: number | null;
  automatic: boolean;
  createdAt: number;
  reason: string;
}

/** How often the regions are read while the page is open. */
export const REGIONS_REFRESH_MS = 10_000;

/** The regions containing pixel (x, y) and still in force at `now`. */
export function regionsAt(regions: readonly Region[], x: number, y: number, now: number): Region[] {
  return regions.filter(
    (r) => x >= r.x && y >= r.y && x < r.x + r.width && y < r.y + r.height && (r.until === null || now < r.until),
  );
}

/** The tooltip's line for a region: its reason, and when it ends. */
export function regionText(r: Region, now: number): string {
  if (r.until === null) return r.reason;
  const minutes = Math.max(1, Math.ceil((r.until - now) / 60_000));
  return `${r.reason} (${minutes < 60 ? `${minutes} min` : `${Math.ceil(minutes / 60)} h`} left)`;
}

export interface RegionHooks {
  /** Outline these regions on the canvas. */
  draw(regions: readonly Region[]): void;
}

/** Keeps the regions in force, read from the server. */
export class RegionsView {
  private regions: Region[] = [];
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(private hooks: RegionHooks) {}

  /** Starts reading them now and every {@link REGIONS_REFRESH_MS}. */
  start(): void {
    void this.refresh();
    if (this.timer === null) this.timer = setInterval(() => void this.refresh(), REGIONS_REFRESH_MS);
  }

  /** The regions in force. */
  get all(): readonly Region[] {
    return this.regions;
  }

  /** The tooltip's lines for pixel (x, y): why placing there is restricted. */
  reasonsAt(x: number, y: number): string[] {
    const now = Date.now();
    return regionsAt(this.regions, x, y, now).map((r) => regionText(r, now));
  }

  /** Reads them again now. */
  async refresh(): Promise<void> {
    try {
      const res = await fetch("/api/v1/regions", { credentials: "same-origin" });
      if (!res.ok) throw new Error(`GET regions: ${res.status}`);
      const { regions } = (await res.json()) as { regions: Region[] };
      this.regions = regions;
      this.hooks.draw(regions);
    } catch (e) {
      console.warn("place: regions:", e);
    }
  }
}
