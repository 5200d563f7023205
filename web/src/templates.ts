// Templates: an image laid over the canvas at (x, y) to paint by, kept on the
// server (/api/v1/templates) and shared as a link (?template=ID). The panel
// makes one from an image file (mapped to the palette here, nearest colour),
// shows its progress (the server's count), finds the next wrong pixel, copies
// the link, and says when one of its right pixels is overwritten (a toast with
// "Go there", the tab title and a sound while the tab is in the background,
// and a system notification where the player allowed them). The rules
// (palette mapping, what counts as damage, the next wrong pixel) are pure and
// tested in tests/unit.

import { parseColor } from "./palette";
import { remember, remembered } from "./prefs";
import { chime, DAMAGE_TONES } from "./sound";
import { el } from "./ui";

/** The longest side the server accepts. */
export const TEMPLATE_MAX_SIDE = 1024;
/** Progress is asked for this often while a template is open. */
export const PROGRESS_REFRESH_MS = 5000;
/** Damage within this long makes one alert. */
export const ALERT_GROUP_MS = 1500;

/** A template as the page holds it: a palette index per pixel, -1 where transparent. */
export interface Template {
  id: string;
  x: number;
  y: number;
  width: number;
  height: number;
  cells: Int16Array;
  /** Pixels that are part of it. */
  total: number;
}

/** The palette index nearest an RGB colour (squared distance, weighted a little for the eye). */
export function nearestColor(r: number, g: number, b: number, palette: readonly [number, number, number][]): number {
  let best = 0;
  let bestD = Infinity;
  palette.forEach(([pr, pg, pb], i) => {
    const d = 2 * (r - pr) ** 2 + 4 * (g - pg) ** 2 + 3 * (b - pb) ** 2;
    if (d < bestD) {
      bestD = d;
      best = i;
    }
  });
  return best;
}

/** `#rrggbb` to [r, g, b]. */
export function rgbOf(hex: string): [number, number, number] {
  const w = parseColor(hex); // 0xAABBGGRR
  return [w & 255, (w >> 8) & 255, (w >> 16) & 255];
}

/** RGBA pixels to palette indices: -1 where alpha is below 128, else the nearest colour. */
export function mapToPalette(rgba: ArrayLike<number>, palette: readonly string[]): Int16Array {
  const colors = palette.map(rgbOf);
  const exact = new Map(colors.map(([r, g, b], i) => [(r << 16) | (g << 8) | b, i]));
  const out = new Int16Array(rgba.length / 4);
  for (let i = 0; i < out.length; i++) {
    const [r, g, b, a] = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2], rgba[4 * i + 3]];
    out[i] = a < 128 ? -1 : (exact.get((r << 16) | (g << 8) | b) ?? nearestColor(r, g, b, colors));
  }
  return out;
}

/** The colour the template wants at canvas pixel (x, y), or -1 (none there). */
export function expectedAt(t: Template, x: number, y: number): number {
  const lx = x - t.x;
  const ly = y - t.y;
  if (lx < 0 || ly < 0 || lx >= t.width || ly >= t.height) return -1;
  return t.cells[ly * t.width + lx];
}

/** A right pixel of the template was overwritten with another colour. */
export function isDamage(t: Template, x: number, y: number, before: number | undefined, after: number): boolean {
  const want = expectedAt(t, x, y);
  return want >= 0 && before === want && after !== want;
}

/**
 * The wrong pixel of the template nearest (cx, cy), skipping `skip`; null when every pixel
 * whose colour is known is right. `truth` answers undefined for a pixel it does not know.
 */
export function nextWrong(
  t: Template,
  truth: (x: number, y: number) => number | undefined,
  cx: number,
  cy: number,
  skip: { x: number; y: number } | null = null,
): { x: number; y: number; color: number } | null {
  let best: { x: number; y: number; color: number } | null = null;
  let bestD = Infinity;
  for (let ly = 0; ly < t.height; ly++) {
    for (let lx = 0; lx < t.width; lx++) {
      const want = t.cells[ly * t.width + lx];
      if (want < 0) continue;
      const x = t.x + lx;
      const y = t.y + ly;
      if (skip && skip.x === x && skip.y === y) continue;
      const shown = truth(x, y);
      if (shown === undefined || shown === want) continue;
      const d = (x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2;
      if (d < bestD) {
        bestD = d;
        best = { x, y, color: want };
      }
    }
  }
  return best;
}

/** The text of a damage alert for `n` pixels, the first at (x, y). */
export function damageText(n: number, x: number, y: number): string {
  return n === 1 ? `Your template was damaged at (${x}, ${y})` : `${n} pixels of your template were overwritten, near (${x}, ${y})`;
}

/** "123 / 456 right (27%)". */
export function progressText(correct: number, total: number): string {
  const pct = total > 0 ? Math.floor((100 * correct) / total) : 0;
  return `${correct.toLocaleString("en")} / ${total.toLocaleString("en")} right (${pct}%)`;
}

/** The template id a page URL carries (`?template=ID`), or null. */
export function templateIdOf(search: string): string | null {
  const id = new URLSearchParams(search).get("template");
  return id && /^[0-9a-f]{16}$/.test(id) ? id : null;
}

/** The RGBA image of a template in palette colours (transparent where it is not). */
export function templateRgba(t: { width: number; height: number; cells: Int16Array }, palette: readonly string[]): ImageData {
  const img = new ImageData(t.width, t.height);
  const words = new Uint32Array(img.data.buffer);
  const table = palette.map(parseColor);
  for (let i = 0; i < t.cells.length; i++) words[i] = t.cells[i] < 0 ? 0 : (table[t.cells[i]] ?? 0);
  return img;
}

async function pixelsOf(source: Blob): Promise<ImageData> {
  const bitmap = await createImageBitmap(source);
  if (bitmap.width > TEMPLATE_MAX_SIDE || bitmap.height > TEMPLATE_MAX_SIDE) {
    throw new Error(`A template is at most ${TEMPLATE_MAX_SIDE} pixels a side; this image is ${bitmap.width}x${bitmap.height}`);
  }
  const c = Object.assign(document.createElement("canvas"), { width: bitmap.width, height: bitmap.height });
  const ctx = c.getContext("2d", { willReadFrequently: true });
  if (!ctx) throw new Error("no 2d context");
  ctx.drawImage(bitmap, 0, 0);
  return ctx.getImageData(0, 0, bitmap.width, bitmap.height);
}

async function errorText(res: Response): Promise<string> {
  const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
  return body?.error?.message ?? `the server answered ${res.status}`;
}

/** Loads template `id` from the server. */
export async function loadTemplate(id: string, palette: readonly string[]): Promise<Template> {
  const meta = await fetch(`/api/v1/templates/${id}`, { credentials: "same-origin" });
  if (!meta.ok) throw new Error(meta.status === 404 ? "That template does not exist" : await errorText(meta));
  const m = (await meta.json()) as { id: string; x: number; y: number; width: number; height: number; total: number; image: string };
  const png = await fetch(m.image, { credentials: "same-origin" });
  if (!png.ok) throw new Error(await errorText(png));
  const img = await pixelsOf(await png.blob());
  return { id: m.id, x: m.x, y: m.y, width: img.width, height: img.height, cells: mapToPalette(img.data, palette), total: m.total };
}

/** Maps an image file to the palette and stores it as a template at (x, y). */
export async function createTemplate(file: Blob, x: number, y: number, palette: readonly string[]): Promise<Template> {
  const img = await pixelsOf(file);
  const cells = mapToPalette(img.data, palette);
  const mapped = templateRgba({ width: img.width, height: img.height, cells }, palette);
  const c = Object.assign(document.createElement("canvas"), { width: img.width, height: img.height });
  c.getContext("2d")?.putImageData(mapped, 0, 0);
  const png = await new Promise<Blob | null>((r) => c.toBlob(r, "image/png"));
  if (!png) throw new Error("could not encode the image");
  const res = await fetch(`/api/v1/templates?x=${x}&y=${y}`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "image/png" },
    body: png,
  });
  if (!res.ok) throw new Error(await errorText(res));
  const m = (await res.json()) as { id: string; total: number };
  return { id: m.id, x, y, width: img.width, height: img.height, cells, total: m.total };
}

export interface TemplateHooks {
  palette(): readonly string[];
  /** The canvas pixel at the centre of the view, to place a new template around. */
  centre(): { x: number; y: number };
  canvasSize(): { width: number; height: number };
  /** The template shown (null: none). */
  show(t: Template | null, opacity: number): void;
  /** "Next wrong pixel" was pressed. */
  nextWrong(): void;
  /** "Go there" of an alert. */
  goTo(x: number, y: number): void;
  toast(message: string): void;
}

/** The template panel, the overlay's state and the damage alerts. */
export class TemplateView {
  private button = el<HTMLButtonElement>("template-button");
  private panel = el("template-panel");
  private form = el("template-new");
  private open_ = el("template-open");
  private file = el<HTMLInputElement>("template-file");
  private xInput = el<HTMLInputElement>("template-x");
  private yInput = el<HTMLInputElement>("template-y");
  private note = el("template-note");
  private progress = el("template-progress");
  private opacity = el<HTMLInputElement>("template-opacity");
  private soundBox = el<HTMLInputElement>("template-sound");
  private notifyBox = el<HTMLInputElement>("template-notify");
  private alertEl = el("alert");
  private alertText = el("alert-text");
  private alertGo = el<HTMLButtonElement>("alert-go");
  template: Template | null = null;
  /** The server's last count. */
  counts: { total: number; correct: number } | null = null;
  private progressTimer: ReturnType<typeof setTimeout> | null = null;
  private pending: { n: number; x: number; y: number; timer: ReturnType<typeof setTimeout> } | null = null;
  private alertTimer: ReturnType<typeof setTimeout> | null = null;
  /** The last alert while the tab was hidden, for the title. */
  unseenDamage: { x: number; y: number } | null = null;
  /** Alerts shown (debug hook). */
  alerts = 0;

  constructor(private hooks: TemplateHooks) {
    this.button.addEventListener("click", () => this.toggle());
    el("template-close").addEventListener("click", () => this.toggle(false));
    el("template-add").addEventListener("click", () => void this.create());
    el("template-next").addEventListener("click", () => this.hooks.nextWrong());
    el("template-share").addEventListener("click", () => void this.share());
    el("template-remove").addEventListener("click", () => this.remove());
    this.file.addEventListener("change", () => void this.suggestPlace());
    this.opacity.value = remembered("templateOpacity") ?? "0.6";
    this.opacity.addEventListener("input", () => {
      remember("templateOpacity", this.opacity.value);
      this.hooks.show(this.template, this.opacityValue);
    });
    this.soundBox.checked = remembered("templateSound") === "on";
    this.soundBox.addEventListener("change", () => remember("templateSound", this.soundBox.checked ? "on" : "off"));
    this.notifyBox.checked = typeof Notification !== "undefined" && Notification.permission === "granted" && remembered("templateNotify") === "on";
    this.notifyBox.addEventListener("change", () => void this.askNotify());
    this.alertGo.addEventListener("click", () => {
      const at = this.alertGo.dataset;
      this.alertEl.hidden = true;
      this.hooks.goTo(Number(at.x), Number(at.y));
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) this.unseenDamage = null;
    });
  }

  get opacityValue(): number {
    const v = Number(this.opacity.value);
    return Number.isFinite(v) ? Math.min(1, Math.max(0.1, v)) : 0.6;
  }

  get sound(): boolean {
    return this.soundBox.checked;
  }

  toggle(open?: boolean): void {
    const show = open ?? this.panel.hidden;
    this.panel.hidden = !show;
    this.button.setAttribute("aria-pressed", String(show || this.template !== null));
    if (show && !this.template) void this.suggestPlace();
  }

  /** Opens the template of the page's URL, if it names one. */
  async openFromUrl(): Promise<void> {
    const id = templateIdOf(location.search);
    if (!id) return;
    try {
      this.setTemplate(await loadTemplate(id, this.hooks.palette()));
    } catch (e) {
      this.hooks.toast(`Template: ${(e as Error).message}`);
    }
  }

  /** X and Y so the chosen image is centred in the view (kept on the canvas). */
  private async suggestPlace(): Promise<void> {
    const c = this.hooks.centre();
    const size = this.hooks.canvasSize();
    let w = 0;
    let h = 0;
    const f = this.file.files?.[0];
    if (f) {
      try {
        const b = await createImageBitmap(f);
        w = b.width;
        h = b.height;
      } catch {
        /* said on upload */
      }
    }
    this.xInput.value = String(Math.max(0, Math.min(size.width - w, c.x - Math.floor(w / 2))));
    this.yInput.value = String(Math.max(0, Math.min(size.height - h, c.y - Math.floor(h / 2))));
  }

  private async create(): Promise<void> {
    const f = this.file.files?.[0];
    if (!f) return this.say("Choose an image first");
    const x = Number(this.xInput.value);
    const y = Number(this.yInput.value);
    if (!Number.isInteger(x) || !Number.isInteger(y) || x < 0 || y < 0) return this.say("X and Y are whole numbers of pixels");
    this.say("Uploading…");
    try {
      const t = await createTemplate(f, x, y, this.hooks.palette());
      this.setTemplate(t);
      this.say("");
    } catch (e) {
      this.say((e as Error).message);
    }
  }

  private say(text: string): void {
    this.note.textContent = text;
    this.note.hidden = text === "";
  }

  private setTemplate(t: Template | null): void {
    this.template = t;
    this.counts = null;
    this.form.hidden = t !== null;
    this.open_.hidden = t === null;
    const url = new URL(location.href);
    if (t) url.searchParams.set("template", t.id);
    else url.searchParams.delete("template");
    history.replaceState(null, "", url);
    this.progress.textContent = t ? progressText(0, t.total).replace(/^0 /, "… ") : "";
    this.button.setAttribute("aria-pressed", String(!this.panel.hidden || t !== null));
    this.hooks.show(t, this.opacityValue);
    void this.refreshProgress();
  }

  private remove(): void {
    this.setTemplate(null);
    this.alertEl.hidden = true;
  }

  /** Asks the server for the count now, and again every PROGRESS_REFRESH_MS. */
  async refreshProgress(): Promise<void> {
    if (this.progressTimer) clearTimeout(this.progressTimer);
    this.progressTimer = null;
    const t = this.template;
    if (!t) return;
    this.progressTimer = setTimeout(() => void this.refreshProgress(), PROGRESS_REFRESH_MS);
    if (document.hidden) return;
    try {
      const res = await fetch(`/api/v1/templates/${t.id}/progress`, { credentials: "same-origin" });
      if (!res.ok || this.template !== t) return;
      this.counts = (await res.json()) as { total: number; correct: number };
      this.progress.textContent = progressText(this.counts.correct, this.counts.total);
    } catch {
      /* offline: the notice says so */
    }
  }

  /** Asks for the count soon (after a placement or damage; several make one request). */
  progressSoon(): void {
    if (!this.template) return;
    if (this.progressTimer) clearTimeout(this.progressTimer);
    this.progressTimer = setTimeout(() => void this.refreshProgress(), 700);
  }

  private async share(): Promise<void> {
    const t = this.template;
    if (!t) return;
    const url = `${location.origin}${location.pathname}?template=${t.id}#x=${t.x + Math.floor(t.width / 2)}&y=${t.y + Math.floor(t.height / 2)}&zoom=8`;
    try {
      await navigator.clipboard.writeText(url);
      this.hooks.toast("Link to this template copied");
    } catch {
      this.hooks.toast(url);
    }
  }

  private async askNotify(): Promise<void> {
    if (!this.notifyBox.checked) return remember("templateNotify", "off");
    if (typeof Notification === "undefined") {
      this.notifyBox.checked = false;
      return this.hooks.toast("This browser has no notifications");
    }
    const answer = Notification.permission === "granted" ? "granted" : await Notification.requestPermission();
    this.notifyBox.checked = answer === "granted";
    remember("templateNotify", this.notifyBox.checked ? "on" : "off");
    if (answer !== "granted") this.hooks.toast("Notifications are blocked for this site");
  }

  /** One of the template's right pixels was overwritten: alerts within ALERT_GROUP_MS are one. */
  damaged(x: number, y: number): void {
    if (this.pending) {
      this.pending.n++;
      return;
    }
    this.pending = { n: 1, x, y, timer: setTimeout(() => this.alert(), document.hidden ? ALERT_GROUP_MS : 150) };
    this.progressSoon();
  }

  private alert(): void {
    const p = this.pending;
    this.pending = null;
    if (!p) return;
    this.alerts++;
    const text = damageText(p.n, p.x, p.y);
    this.alertText.textContent = text;
    this.alertGo.dataset.x = String(p.x);
    this.alertGo.dataset.y = String(p.y);
    this.alertEl.hidden = false;
    if (this.alertTimer) clearTimeout(this.alertTimer);
    this.alertTimer = setTimeout(() => (this.alertEl.hidden = true), 12_000);
    if (!document.hidden) return;
    // In the background: the title (see App), a sound, a system notification.
    this.unseenDamage = { x: p.x, y: p.y };
    if (this.sound) chime(DAMAGE_TONES);
    if (this.notifyBox.checked && typeof Notification !== "undefined" && Notification.permission === "granted") {
      const n = new Notification("place: your template was damaged", { body: text, tag: "place-template" });
      n.onclick = () => {
        window.focus();
        this.hooks.goTo(p.x, p.y);
        n.close();
      };
    }
  }
}
