// The timelapse viewer: the page's side of /api/v1/timelapse. The Timelapse
// button opens a panel with a slider over the log's span; the view you are
// looking at, as it was at the slider's time, is shown in place of the board,
// and panning and zooming work as ever (the frame follows, and is fetched
// again for a view it does not cover). While the slider moves, the nearest
// snapshot at or before that time is shown at once (the browser caches them);
// when it rests, the exact frame of the view at that time replaces it, so what
// stays on screen is exactly the canvas then. Play steps through the span at
// the chosen speed with exact frames. "Render GIF" renders the view's
// rectangle over the span with the frames and speed chosen, and polls the job
// until the download is offered.
// The rules (which snapshot, texts) are pure and tested in tests/unit.

import { el } from "./ui";

/** One snapshot as GET /api/v1/timelapse/snapshots lists it. */
export interface SnapshotInfo {
  id: number;
  takenAt: number;
  coversUntil: number;
  events: number;
  url: string;
}

/** GET /api/v1/timelapse/snapshots. */
export interface SnapshotList {
  snapshots: SnapshotInfo[];
  firstEventAt: number | null;
  lastEventAt: number | null;
  now: number;
}

/** A render job as GET /api/v1/timelapse/jobs/{id} shows it. */
export interface Job {
  jobId: string;
  status: "queued" | "running" | "done" | "failed";
  framesDone: number;
  framesTotal: number;
  error: string | null;
  downloadUrl: string | null;
}

/** How long the slider rests before the exact frame is asked for. */
export const EXACT_DELAY_MS = 150;
/** How often a running job is polled. */
export const POLL_MS = 500;
/** Steps of the slider. */
export const SLIDER_STEPS = 1000;
/** Frames of a rendered GIF: the choices' bounds (the server allows up to 1,000). */
export const RENDER_FRAMES_MIN = 2;
export const RENDER_FRAMES_MAX = 200;
/** Play: slider steps per frame at 1x, and the shortest time a frame shows. */
export const PLAY_STEP = 5;
export const PLAY_FRAME_MS = 150;
/** A frame is fetched for the view widened by this fraction on each side, so small pans need none. */
export const FRAME_MARGIN = 0.25;

/** A rectangle of the canvas, in whole pixels. */
export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** The canvas rectangle a view shows, widened by `margin` of its size on each side, clamped to the canvas. */
export function viewRect(cx: number, cy: number, zoom: number, screen: { width: number; height: number }, canvas: { width: number; height: number }, margin = 0): Rect {
  const w = screen.width / zoom;
  const h = screen.height / zoom;
  const x0 = Math.max(0, Math.floor(cx - w / 2 - w * margin));
  const y0 = Math.max(0, Math.floor(cy - h / 2 - h * margin));
  const x1 = Math.min(canvas.width, Math.ceil(cx + w / 2 + w * margin));
  const y1 = Math.min(canvas.height, Math.ceil(cy + h / 2 + h * margin));
  return { x: x0, y: y0, width: Math.max(1, x1 - x0), height: Math.max(1, y1 - y0) };
}

/** Whether rectangle `inner` lies within `outer`. */
export function covers(outer: Rect, inner: Rect): boolean {
  return inner.x >= outer.x && inner.y >= outer.y && inner.x + inner.width <= outer.x + outer.width && inner.y + inner.height <= outer.y + outer.height;
}

/** The render request for a view: its rectangle over the span, `frames` bounded, each shown 100 ms / speed (at least 20 ms). */
export function renderRequest(span: [number, number], rect: Rect, frames: number, speed: number) {
  return {
    from: span[0],
    to: span[1],
    ...rect,
    frames: Math.min(RENDER_FRAMES_MAX, Math.max(RENDER_FRAMES_MIN, Math.round(frames))),
    delayMs: Math.max(20, Math.round(100 / Math.max(1, speed))),
    format: "gif" as const,
  };
}

/** The latest snapshot usable at `t` (its coversUntil at or before `t`), or null. */
export function snapshotAt(snapshots: readonly SnapshotInfo[], t: number): SnapshotInfo | null {
  let best: SnapshotInfo | null = null;
  for (const s of snapshots) if (s.coversUntil <= t && (!best || s.coversUntil > best.coversUntil)) best = s;
  return best;
}

/** The span the slider covers: the log's first to last placement (or now). */
export function span(list: SnapshotList): [number, number] {
  const from = list.firstEventAt ?? list.now;
  const to = Math.max(from, list.lastEventAt ?? list.now);
  return [from, to];
}

/** The time at slider position `pos` of SLIDER_STEPS. */
export function timeAt([from, to]: [number, number], pos: number): number {
  return Math.round(from + ((to - from) * pos) / SLIDER_STEPS);
}

/** "2026-11-25 18:03:07" in the viewer's time zone. */
export function timeText(t: number): string {
  const d = new Date(t);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** What the panel says of a job. */
export function jobText(job: Job): string {
  switch (job.status) {
    case "queued":
      return "Queued…";
    case "running":
      return `Rendering ${job.framesDone}/${job.framesTotal} frames…`;
    case "done":
      return "Done:";
    case "failed":
      return `Failed: ${job.error ?? "unknown error"}`;
  }
}

export interface TimelapseHooks {
  toast(m: string): void;
  /** Whether a registered user is signed in: renders are for accounts, not guests. */
  signedIn(): boolean;
  /** The view now: centre, zoom, the screen's and the canvas's sizes. */
  view(): { cx: number; cy: number; zoom: number; screen: { width: number; height: number }; canvas: { width: number; height: number } } | null;
}

/** The timelapse button, panel and overlay. */
export class TimelapseView {
  private button = el<HTMLButtonElement>("timelapse-button");
  private panel = el("timelapse-panel");
  private slider = el<HTMLInputElement>("timelapse-slider");
  private time = el("timelapse-time");
  private exactNote = el("timelapse-exact");
  private frame = el<HTMLImageElement>("timelapse-frame");
  private renderButton = el<HTMLButtonElement>("timelapse-render");
  private jobNote = el("timelapse-job");
  private download = el<HTMLAnchorElement>("timelapse-download");
  private playButton = el<HTMLButtonElement>("timelapse-play");
  private speedSelect = el<HTMLSelectElement>("timelapse-speed");
  private framesSelect = el<HTMLSelectElement>("timelapse-frames");
  /** The canvas rectangle the image shown holds. */
  frameRect: Rect | null = null;
  private refetchTimer: ReturnType<typeof setTimeout> | null = null;
  private playing = false;
  /** Loads of frames, newest wins: a load that finishes after a newer one started is dropped. */
  private loadSeq = 0;
  private list: SnapshotList | null = null;
  private exactTimer: ReturnType<typeof setTimeout> | null = null;
  /** The time shown exactly, or null while a snapshot stands in. */
  exactAt: number | null = null;
  /** The time the slider is at. */
  at = 0;

  constructor(private deps: TimelapseHooks) {
    this.button.addEventListener("click", () => void this.toggle());
    el("timelapse-close").addEventListener("click", () => void this.toggle(false));
    this.slider.addEventListener("input", () => this.scrub(Number(this.slider.value)));
    this.renderButton.addEventListener("click", () => void this.render());
    this.playButton.addEventListener("click", () => (this.playing ? this.stop() : void this.play()));
  }

  /** The view moved: the frame follows it, and a frame of the new view is fetched once it rests if this one does not cover it. */
  follow(): void {
    if (!this.open) return;
    this.position();
    const v = this.deps.view();
    if (!v || !this.frameRect || this.playing) return;
    if (covers(this.frameRect, viewRect(v.cx, v.cy, v.zoom, v.screen, v.canvas))) return;
    if (this.refetchTimer) clearTimeout(this.refetchTimer);
    this.refetchTimer = setTimeout(() => {
      this.refetchTimer = null;
      void this.showExact(this.at);
    }, EXACT_DELAY_MS);
  }

  /** Places the image over the part of the screen its rectangle covers. */
  private position(): void {
    const v = this.deps.view();
    const r = this.frameRect;
    if (!v || !r) return;
    const left = (r.x - v.cx) * v.zoom + v.screen.width / 2;
    const top = (r.y - v.cy) * v.zoom + v.screen.height / 2;
    Object.assign(this.frame.style, { left: `${left}px`, top: `${top}px`, width: `${r.width * v.zoom}px`, height: `${r.height * v.zoom}px` });
  }

  /** Shows `url`, holding rectangle `rect`, once loaded (unless a newer load started). */
  private async showImage(url: string, rect: Rect): Promise<boolean> {
    const seq = ++this.loadSeq;
    const img = new Image();
    img.src = url;
    try {
      await img.decode();
    } catch {
      return false;
    }
    if (seq !== this.loadSeq || !this.open) return false;
    this.frame.src = url;
    // One image pixel is one canvas pixel: a snapshot from before the canvas grew is smaller
    // than the canvas now, and is laid at its own size, not stretched.
    this.frameRect = { ...rect, width: img.naturalWidth || rect.width, height: img.naturalHeight || rect.height };
    this.position();
    return true;
  }

  /** The exact frame of the view (with a margin) at `t`. */
  private async showExact(t: number): Promise<boolean> {
    const v = this.deps.view();
    if (!v) return false;
    const r = viewRect(v.cx, v.cy, v.zoom, v.screen, v.canvas, FRAME_MARGIN);
    const ok = await this.showImage(`/api/v1/timelapse/frame?t=${t}&x=${r.x}&y=${r.y}&width=${r.width}&height=${r.height}`, r);
    if (ok && this.at === t) {
      this.exactAt = t;
      this.exactNote.hidden = false;
    }
    return ok;
  }

  private get speed(): number {
    const s = Number(this.speedSelect.value);
    return Number.isFinite(s) && s > 0 ? s : 1;
  }

  /** Steps through the span from the slider's place (from the start when at the end), exact frames at the speed chosen. */
  private async play(): Promise<void> {
    if (!this.list) return;
    this.playing = true;
    this.playButton.textContent = "⏸";
    this.playButton.setAttribute("aria-label", "Pause");
    let pos = Number(this.slider.value);
    if (pos >= SLIDER_STEPS) pos = 0;
    while (this.playing && this.open) {
      const started = performance.now();
      this.slider.value = String(pos);
      this.setAt(timeAt(span(this.list), pos));
      await this.showExact(this.at);
      if (pos >= SLIDER_STEPS) break;
      pos = Math.min(SLIDER_STEPS, pos + PLAY_STEP * this.speed);
      await new Promise((r) => setTimeout(r, Math.max(0, PLAY_FRAME_MS - (performance.now() - started))));
    }
    this.stop();
  }

  private stop(): void {
    this.playing = false;
    this.playButton.textContent = "▶";
    this.playButton.setAttribute("aria-label", "Play");
  }

  private setAt(t: number): void {
    this.at = t;
    this.time.textContent = timeText(t);
    this.exactAt = null;
    this.exactNote.hidden = true;
  }

  get open(): boolean {
    return !this.panel.hidden;
  }

  /** Opens (or closes) the viewer; opening reads the snapshots and shows the latest moment. */
  async toggle(open = !this.open): Promise<void> {
    this.panel.hidden = !open;
    this.frame.hidden = !open;
    this.button.setAttribute("aria-pressed", String(open));
    if (!open) {
      this.stop();
      this.frameRect = null;
      this.frame.removeAttribute("src");
      return;
    }
    try {
      const res = await fetch("/api/v1/timelapse/snapshots", { credentials: "same-origin" });
      if (!res.ok) throw new Error(`GET snapshots: ${res.status}`);
      this.list = (await res.json()) as SnapshotList;
    } catch (e) {
      this.deps.toast("The timelapse is unavailable");
      console.warn("place: timelapse:", e);
      return;
    }
    this.slider.value = String(SLIDER_STEPS);
    this.scrub(SLIDER_STEPS);
  }

  /** Moves to slider position `pos`: the snapshot at once, the exact frame once it rests. */
  scrub(pos: number): void {
    if (!this.list) return;
    if (this.playing) this.stop();
    const t = timeAt(span(this.list), pos);
    this.setAt(t);
    const snapshot = snapshotAt(this.list.snapshots, t);
    const v = this.deps.view();
    if (snapshot && v) void this.showImage(snapshot.url, { x: 0, y: 0, width: v.canvas.width, height: v.canvas.height });
    if (this.exactTimer) clearTimeout(this.exactTimer);
    this.exactTimer = setTimeout(() => void this.showExact(t), EXACT_DELAY_MS);
  }

  /** Renders the view's rectangle over the span as a GIF, polls the job and offers the download. */
  async render(): Promise<void> {
    const v = this.deps.view();
    if (!this.list || !v) return;
    if (!this.deps.signedIn()) {
      this.download.hidden = true;
      this.jobNote.textContent = "Rendering a GIF needs an account: sign in or register first.";
      return;
    }
    const request = renderRequest(span(this.list), viewRect(v.cx, v.cy, v.zoom, v.screen, v.canvas), Number(this.framesSelect.value), this.speed);
    this.renderButton.disabled = true;
    this.download.hidden = true;
    this.jobNote.textContent = "Queued…";
    try {
      const res = await fetch("/api/v1/timelapse/render", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(request),
      });
      const body = await res.json();
      if (!res.ok) throw new Error(body?.error?.message ?? `render: ${res.status}`);
      let job = body as Job;
      while (job.status === "queued" || job.status === "running") {
        this.jobNote.textContent = jobText(job);
        await new Promise((r) => setTimeout(r, POLL_MS));
        const poll = await fetch(`/api/v1/timelapse/jobs/${job.jobId}`, { credentials: "same-origin" });
        if (!poll.ok) throw new Error(`job: ${poll.status}`);
        job = (await poll.json()) as Job;
      }
      this.jobNote.textContent = jobText(job);
      if (job.status === "done" && job.downloadUrl) {
        this.download.href = job.downloadUrl;
        this.download.hidden = false;
      }
    } catch (e) {
      this.jobNote.textContent = `Failed: ${(e as Error).message}`;
    } finally {
      this.renderButton.disabled = false;
    }
  }
}
