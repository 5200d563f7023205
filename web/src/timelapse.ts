// The timelapse viewer: the page's side of /api/v1/timelapse. The Timelapse
// button opens a panel with a slider over the log's span; the canvas as it was
// at the slider's time is shown over the board. While the slider moves, the
// nearest snapshot at or before that time is shown at once (the browser caches
// them); when it rests, the exact frame at that time replaces it, so what
// stays on screen is exactly the canvas then. "Render GIF" starts a render job
// of the span and polls it until the download is offered.
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
/** Frames of a rendered GIF. */
export const RENDER_FRAMES = 60;

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
  private list: SnapshotList | null = null;
  private exactTimer: ReturnType<typeof setTimeout> | null = null;
  /** The time shown exactly, or null while a snapshot stands in. */
  exactAt: number | null = null;
  /** The time the slider is at. */
  at = 0;

  constructor(private deps: { toast: (m: string) => void }) {
    this.button.addEventListener("click", () => void this.toggle());
    el("timelapse-close").addEventListener("click", () => void this.toggle(false));
    this.slider.addEventListener("input", () => this.scrub(Number(this.slider.value)));
    this.renderButton.addEventListener("click", () => void this.render());
    this.frame.addEventListener("load", () => {
      this.exactNote.hidden = this.exactAt === null;
    });
  }

  get open(): boolean {
    return !this.panel.hidden;
  }

  /** Opens (or closes) the viewer; opening reads the snapshots and shows the latest moment. */
  async toggle(open = !this.open): Promise<void> {
    this.panel.hidden = !open;
    this.frame.hidden = !open;
    this.button.setAttribute("aria-pressed", String(open));
    if (!open) return;
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
    const t = timeAt(span(this.list), pos);
    this.at = t;
    this.time.textContent = timeText(t);
    this.exactAt = null;
    this.exactNote.hidden = true;
    const snapshot = snapshotAt(this.list.snapshots, t);
    if (snapshot) this.frame.src = snapshot.url;
    if (this.exactTimer) clearTimeout(this.exactTimer);
    this.exactTimer = setTimeout(() => {
      this.exactAt = t;
      this.frame.src = `/api/v1/timelapse/frame?t=${t}`;
    }, EXACT_DELAY_MS);
  }

  /** Renders the whole span as a GIF, polls the job and offers the download. */
  async render(): Promise<void> {
    if (!this.list) return;
    const [from, to] = span(this.list);
    this.renderButton.disabled = true;
    this.download.hidden = true;
    this.jobNote.textContent = "Queued…";
    try {
      const res = await fetch("/api/v1/timelapse/render", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ from, to, frames: RENDER_FRAMES, delayMs: 100, format: "gif" }),
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
