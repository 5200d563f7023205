// The admin panel: shown only to an administrator (GET /api/v1/auth/me says
// isAdmin). The figures (players online, placements per minute, top placers,
// bans, shard health; refreshed while the panel is open and after every
// change); find a user by name or by picking a pixel, see and highlight their
// recent placements, ban or unban them, roll their placements back; select a
// rectangle on the canvas and roll it back over a time window, reset it (or
// the whole canvas) or protect it (a region); change the cooldown; page
// through the audit log, each entry a sentence with its JSON behind a
// disclosure. Every destructive action (ban, rollback, reset) asks first in a
// modal that is on screen whatever the window's size. On a phone the panel is
// a sheet over the lower part of the screen, under the top bar's buttons.
// Talks to /api/v1/admin/*; the formatting and the rules are pure functions,
// tested in tests/unit.

import type { Me } from "./account";
import type { Region } from "./regions";
import { el } from "./ui";

/** A user as the admin API shows it. */
export interface AdminUser {
  userId: string;
  username: string;
  isGuest: boolean;
  isAdmin: boolean;
  banned: boolean;
}

/** One placement from the event log. */
export interface Placement {
  x: number;
  y: number;
  color: number;
  userId: string;
  username: string;
  placedAt: number;
  actionId: string | null;
  reverted: boolean;
}

export interface AuditEntry {
  id: string;
  actorId: string;
  /** null for the server itself (actorId "0") or a deleted user. */
  actorName: string | null;
  action: string;
  details: unknown;
  createdAt: number;
}

/** GET /api/v1/admin/stats. */
export interface Stats {
  playersOnline: number;
  placementsLastMinute: number;
  topPlacers: { userId: string; username: string; placements: number }[];
  bannedUsers: number;
  cooldownSeconds: number;
  shards: ShardStat[];
}

/** A shard as the stats show it; the figures are there while it reports. */
export interface ShardStat {
  id: string;
  addr: string;
  status: string;
  tiles?: number;
  queueDepth?: number;
  placementsPerSec?: number | null;
  writeMs?: number;
}

/** GET /api/v1/admin/alarms: a placement spike the server saw in a cell. */
export interface Alarm {
  id: string;
  createdAt: number;
  x: number;
  y: number;
  width: number;
  height: number;
  /** Placements a second over the last 5 s, on the edge that saw it. */
  rate: number;
  /** The cell's usual placements a second before it. */
  baseline: number;
  edge: string;
  /** The automatic slow-down's region, if the server made one. */
  regionId: string | null;
  /** That slow-down is still in force. */
  slowedDown: boolean;
}

/** "18:02:07 42/s in (0,0)-(63,63), usually 0.5/s · slowed down". */
export function alarmText(a: Alarm, now: number): string {
  const slowed = a.slowedDown ? " · slowed down" : a.regionId ? " · slow-down over" : "";
  return `${timeText(a.createdAt, now)} ${a.rate}/s in ${cornersText(a)}, usually ${a.baseline}/s${slowed}`;
}

/** A rectangle of the canvas, in pixels. */
export interface Rect {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Rollback windows offered, in minutes; 0 is "all of them". */
export const ROLLBACK_WINDOWS: readonly { minutes: number; label: string }[] = [
  { minutes: 10, label: "last 10 min" },
  { minutes: 60, label: "last hour" },
  { minutes: 24 * 60, label: "last day" },
  { minutes: 0, label: "all time" },
];

/** How many audit entries and placements are asked for. */
const AUDIT_LIMIT = 20;
/** How often the figures are asked for while the panel is open. */
export const STATS_REFRESH_MS = 5000;
const PLACEMENTS_LIMIT = 100;
/** The server's bound on the cooldown. */
const MAX_COOLDOWN_SECONDS = 3600;

/** The `since` (epoch ms) of a rollback of the last `minutes` (0: everything). */
export function rollbackSince(minutes: number, now: number): number {
  return minutes > 0 ? now - minutes * 60_000 : 0;
}

/** The pixels to outline: each pixel once, rolled-back placements left out. */
export function highlightPixels(placements: readonly Placement[]): { x: number; y: number }[] {
  const seen = new Set<string>();
  const out: { x: number; y: number }[] = [];
  for (const p of placements) {
    const key = `${p.x},${p.y}`;
    if (p.reverted || seen.has(key)) continue;
    seen.add(key);
    out.push({ x: p.x, y: p.y });
  }
  return out;
}

/** The rectangle with these two pixels as opposite corners, both inside it. */
export function rectFromCorners(a: { x: number; y: number }, b: { x: number; y: number }): Rect {
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return { x, y, width: Math.abs(a.x - b.x) + 1, height: Math.abs(a.y - b.y) + 1 };
}

/** "(10, 20) to (29, 34): 20 × 15 px". */
export function rectText(r: Rect): string {
  return `(${r.x}, ${r.y}) to (${r.x + r.width - 1}, ${r.y + r.height - 1}): ${r.width} × ${r.height} px`;
}

/** One line of a shard's health: "shard-1 ok · 342 tiles · queue 0 · 12.5/s · write 3.1 ms". */
export function shardText(s: ShardStat): string {
  const parts = [`${s.id} ${s.status}`];
  if (s.tiles !== undefined) parts.push(`${s.tiles} tiles`);
  if (s.queueDepth !== undefined) parts.push(`queue ${s.queueDepth}`);
  if (typeof s.placementsPerSec === "number") parts.push(`${s.placementsPerSec}/s`);
  if (s.writeMs !== undefined) parts.push(`write ${s.writeMs} ms`);
  return parts.join(" · ");
}

/**
 * The audit log's pages, newest first: the `before` cursor of each page seen
 * so far, so "Newer" goes back exactly to the page it came from.
 */
export class AuditPager {
  private cursors: (string | undefined)[] = [undefined];
  private next: string | null = null;

  /** The `before` of the page shown (undefined: the newest). */
  get before(): string | undefined {
    return this.cursors[this.cursors.length - 1];
  }

  /** 1 for the newest page. */
  get page(): number {
    return this.cursors.length;
  }

  get hasNewer(): boolean {
    return this.cursors.length > 1;
  }

  get hasOlder(): boolean {
    return this.next !== null;
  }

  /** The page shown was answered with this `next` (null: it is the oldest). */
  loaded(next: string | null): void {
    this.next = next;
  }

  /** Moves to the older page; false when there is none. */
  older(): boolean {
    if (this.next === null) return false;
    this.cursors.push(this.next);
    this.next = null;
    return true;
  }

  /** Moves to the newer page; false when this is the newest. */
  newer(): boolean {
    if (this.cursors.length <= 1) return false;
    this.cursors.pop();
    return true;
  }

  /** Back to the newest page. */
  reset(): void {
    this.cursors = [undefined];
    this.next = null;
  }
}

/** Why a cooldown cannot be set, or null. */
export function cooldownProblem(text: string): string | null {
  if (!/^\d+$/.test(text.trim())) return "The cooldown is a whole number of seconds";
  const n = Number(text);
  return n > MAX_COOLDOWN_SECONDS ? `The cooldown is at most ${MAX_COOLDOWN_SECONDS} s` : null;
}

/** "14:03:07" today, else "2026-11-24 14:03". */
export function timeText(epochMs: number, now: number): string {
  const d = new Date(epochMs);
  const pad = (n: number) => String(n).padStart(2, "0");
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (new Date(now).toDateString() === d.toDateString()) return hms;
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hms.slice(0, 5)}`;
}

/** Who did it: the administrator's name, "the server" for what it did by itself. */
export function auditActor(e: AuditEntry): string {
  if (e.actorId === "0") return "the server";
  return e.actorName ?? `deleted user #${e.actorId}`;
}

/** "(990,960)-(1040,1010)": a rectangle by its corner pixels. */
export function cornersText(r: Rect): string {
  return `(${r.x},${r.y})-(${r.x + r.width - 1},${r.y + r.height - 1})`;
}

/** "37 placements", "1 placement". */
function count(n: unknown, what: string): string {
  const k = typeof n === "number" ? n : 0;
  return `${k} ${what}${k === 1 ? "" : "s"}`;
}

/** An audit log time bound: "18:02" today, the date otherwise; 0 and far futures have none. */
function boundText(ms: unknown, now: number): string | null {
  if (typeof ms !== "number" || ms <= 0 || ms > now + 365 * 86_400_000) return null;
  const t = timeText(ms, now);
  return t.length === 8 ? t.slice(0, 5) : t; // "18:02:07" today: to the minute
}

/**
 * What an audit entry did, as a sentence after the actor's name: "rolled back 37 placements of
 * griefer1 in (990,960)-(1040,1010) between 18:02 and 18:05". Unknown actions fall back to their
 * name (the JSON is shown beside it).
 */
export function auditSentence(e: AuditEntry, now: number): string {
  const d = (e.details && typeof e.details === "object" ? e.details : {}) as Record<string, unknown>;
  const who = typeof d.username === "string" ? d.username : `user #${String(d.userId ?? "?")}`;
  const rect = d.rect as Rect | undefined;
  const area = rect ? cornersText(rect) : d.width !== undefined ? cornersText(d as unknown as Rect) : "";
  switch (e.action) {
    case "ban-user":
      return `banned ${who}`;
    case "unban-user":
      return `lifted the ban on ${who}`;
    case "settings":
      return `set the cooldown to ${String(d.cooldownSeconds)} s` + (d.previousSeconds !== undefined ? ` (was ${String(d.previousSeconds)} s)` : "");
    case "rollback": {
      const undone = `rolled back ${count(d.reverted, "placement")}`;
      if (d.userId !== undefined) {
        const since = boundText(d.since, now);
        return `${undone} of ${who}${since ? ` since ${since}` : ""}`;
      }
      const from = boundText(d.from, now);
      const to = boundText(d.to, now);
      const window = from && to ? ` between ${from} and ${to}` : from ? ` since ${from}` : to ? ` until ${to}` : "";
      return `${undone} in ${area}${window}`;
    }
    case "reset-canvas":
      return `reset ${area} to colour 0 (${count(d.reverted, "placement")} rolled back)`;
    case "region-add": {
      const until = boundText(d.until, now);
      const end = until ? ` until ${until}` : "";
      if (d.mode === "slow") return `slowed ${area} down to one pixel every ${String(d.cooldownSeconds)} s${end}`;
      if (d.mode === "registered") return `kept ${area} for registered players${end}`;
      return `locked ${area}${end}`;
    }
    case "region-remove":
      return `lifted the ${String(d.mode)} protection of ${area}`;
    case "spike-alarm":
      return `raised a spike alarm: ${String(d.rate)} placements/s in ${area} (baseline ${String(d.baseline)}/s)`;
    case "ring-add":
      return `added shard ${String(d.shard)} (${String(d.addr)}) to the ring`;
    case "ring-remove":
      return `removed shard ${String(d.shard)} from the ring`;
    default:
      return e.action;
  }
}

/** The answer of a rollback or a reset. */
export interface Outcome {
  reverted: number;
  restored: number;
  failed: number;
}

/** "Rolled back 3 placements, 2 pixels restored" (and what failed). */
export function outcomeText(verb: string, r: Outcome): string {
  return (
    `${verb} ${r.reverted} placement${r.reverted === 1 ? "" : "s"}, ${r.restored} pixel${r.restored === 1 ? "" : "s"} restored` +
    (r.failed > 0 ? `, ${r.failed} failed: do it again` : "")
  );
}

/** What to tell the administrator about a refused request. */
export function adminErrorText(status: number, code: string | undefined, message: string | undefined): string {
  if (status === 401 || code === "UNAUTHORIZED") return "Signed out: sign in again";
  if (status === 403) return "Refused: not an administrator";
  if (status === 404) return "No such user";
  if (status >= 500) return "The server is unavailable: try again";
  return message || `Refused (${status})`;
}

/** A same-origin JSON request to the admin API: the answer, or an Error with the text to show. */
async function api<T>(method: "GET" | "POST" | "PUT" | "DELETE", path: string, body?: object): Promise<T> {
  const res = await fetch(`/api/v1/admin/${path}`, {
    method,
    credentials: "same-origin",
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) {
    const err = await res
      .json()
      .then((b: { error?: { code?: string; message?: string } }) => b.error)
      .catch(() => undefined);
    throw new Error(adminErrorText(res.status, err?.code, err?.message));
  }
  return (await res.json()) as T;
}

/** An audit log line: local time, who, what as a sentence, and the JSON behind a disclosure. */
function auditItem(e: AuditEntry, now: number): HTMLLIElement {
  const li = document.createElement("li");
  const time = document.createElement("time");
  time.dateTime = new Date(e.createdAt).toISOString();
  time.title = new Date(e.createdAt).toLocaleString();
  time.textContent = timeText(e.createdAt, now);
  const actor = document.createElement("b");
  actor.textContent = auditActor(e);
  const sentence = document.createElement("span");
  sentence.textContent = ` ${auditSentence(e, now)}`;
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  summary.textContent = "JSON";
  const json = document.createElement("pre");
  json.textContent = JSON.stringify({ action: e.action, ...(e.details as object) }, null, 1);
  details.append(summary, json);
  const line = document.createElement("p");
  line.append(time, " ", actor, sentence);
  li.append(line, details);
  return li;
}

function item(text: string, onClick?: () => void): HTMLLIElement {
  const li = document.createElement("li");
  if (onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.addEventListener("click", onClick);
    li.append(b);
  } else {
    li.textContent = text;
  }
  return li;
}

export interface AdminHooks {
  /** Outline these pixels on the canvas (empty: none). */
  highlight(pixels: { x: number; y: number }[]): void;
  /** Frame this rectangle on the canvas (null: none). */
  outline(rect: Rect | null): void;
  /** The palette, to show a placement's colour. */
  palette(): readonly string[];
  toast(message: string): void;
  /** The protected regions changed: the page reads them again. */
  regionsChanged(): void;
}

/** "locked (0, 0) to (9, 9): 10 × 10 px, until 18:05" and what made it. */
export function regionLabel(r: Region, now: number): string {
  const mode = r.mode === "slow" ? `slow (${r.cooldownSeconds} s)` : r.mode === "registered" ? "registered only" : "locked";
  const until = r.until === null ? "" : `, until ${timeText(r.until, now)}`;
  return `${mode} ${rectText(r)}${until}${r.automatic ? " · by the spike alarm" : ""}`;
}

/** The "Admin" button in the top bar and its panel. */
export class AdminPanel {
  private toggle = el<HTMLButtonElement>("admin-button");
  private panel = el("admin-panel");
  private nameInput = el<HTMLInputElement>("admin-name");
  private pickButton = el<HTMLButtonElement>("admin-pick");
  private found = el<HTMLUListElement>("admin-found");
  private userBox = el("admin-user");
  private userTitle = el("admin-user-title");
  private banButton = el<HTMLButtonElement>("admin-ban");
  private since = el<HTMLSelectElement>("admin-since");
  private placementsList = el<HTMLUListElement>("admin-placements");
  private cooldownInput = el<HTMLInputElement>("admin-cooldown");
  private auditList = el<HTMLUListElement>("admin-audit");
  private auditNewer = el<HTMLButtonElement>("admin-audit-newer");
  private auditOlder = el<HTMLButtonElement>("admin-audit-older");
  private auditPage = el("admin-audit-page");
  private selectButton = el<HTMLButtonElement>("admin-select");
  private areaText = el("admin-area-text");
  private areaSince = el<HTMLSelectElement>("admin-area-since");
  private areaRollback = el<HTMLButtonElement>("admin-area-rollback");
  private areaReset = el<HTMLButtonElement>("admin-area-reset");
  private regionMode = el<HTMLSelectElement>("admin-region-mode");
  private regionCooldown = el<HTMLInputElement>("admin-region-cooldown");
  private regionFor = el<HTMLSelectElement>("admin-region-for");
  private regionAdd = el<HTMLButtonElement>("admin-region-add");
  private regionList = el<HTMLUListElement>("admin-regions");
  private confirmBox = el("admin-confirm");
  private confirmText = el("admin-confirm-text");
  private error = el("admin-error");
  private user: AdminUser | null = null;
  private pager = new AuditPager();
  private area: Rect | null = null;
  /** The first corner of a rectangle being selected. */
  private corner: { x: number; y: number } | null = null;
  /** What a click on the canvas does while the panel wants one: ask who placed the pixel, or set a corner. */
  private tapMode: "none" | "pick" | "corners" = "none";
  private pendingConfirm: (() => Promise<void>) | null = null;
  private statsTimer: ReturnType<typeof setInterval> | null = null;

  constructor(private hooks: AdminHooks) {
    this.toggle.addEventListener("click", () => this.setOpen(this.panel.hidden));
    el("admin-close").addEventListener("click", () => this.setOpen(false));
    el<HTMLFormElement>("admin-find").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.run(() => this.findByName(this.nameInput.value.trim()));
    });
    this.pickButton.addEventListener("click", () => this.setTapMode(this.tapMode === "pick" ? "none" : "pick"));
    this.banButton.addEventListener("click", () => this.askBan());
    el("admin-rollback").addEventListener("click", () => this.askRollback());
    el<HTMLFormElement>("admin-settings").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.run(() => this.saveCooldown());
    });
    el("admin-audit-refresh").addEventListener("click", () => void this.run(() => this.loadAudit(true)));
    this.auditOlder.addEventListener("click", () => {
      if (this.pager.older()) void this.run(() => this.loadAudit(false));
    });
    this.auditNewer.addEventListener("click", () => {
      if (this.pager.newer()) void this.run(() => this.loadAudit(false));
    });
    this.selectButton.addEventListener("click", () => this.setTapMode(this.tapMode === "corners" ? "none" : "corners"));
    this.areaRollback.addEventListener("click", () => this.askAreaRollback());
    this.areaReset.addEventListener("click", () => this.askReset(this.area));
    el("admin-reset-all").addEventListener("click", () => this.askReset(null));
    this.regionMode.addEventListener("change", () => {
      el("admin-region-cooldown-label").hidden = this.regionMode.value !== "slow";
    });
    this.regionAdd.addEventListener("click", () => void this.run(() => this.addRegion()));
    el("admin-confirm-yes").addEventListener("click", () => {
      const action = this.pendingConfirm;
      this.hideConfirm();
      if (action) void this.run(action);
    });
    el("admin-confirm-no").addEventListener("click", () => this.hideConfirm());
    // Escape, or a click on the dimmed backdrop, is "Cancel".
    this.confirmBox.addEventListener("click", (e) => {
      if (e.target === this.confirmBox) this.hideConfirm();
    });
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !this.confirmBox.hidden) this.hideConfirm();
    });
    for (const select of [this.since, this.areaSince]) {
      select.replaceChildren(
        ...ROLLBACK_WINDOWS.map((w) => Object.assign(document.createElement("option"), { value: String(w.minutes), textContent: w.label })),
      );
    }
  }

  /** Whether a click on the canvas is for the panel (a pick or a corner) rather than a placement. */
  get capturesTaps(): boolean {
    return this.tapMode !== "none";
  }

  /** A click on the canvas at pixel (x, y) while {@link capturesTaps}. */
  async tapAt(x: number, y: number): Promise<void> {
    if (this.tapMode === "pick") return this.pick(x, y);
    if (this.tapMode !== "corners") return;
    if (!this.corner) {
      this.corner = { x, y };
      this.setArea(rectFromCorners(this.corner, this.corner));
      this.areaText.textContent = `From (${x}, ${y}): click the opposite corner`;
      return;
    }
    this.setArea(rectFromCorners(this.corner, { x, y }));
    this.setTapMode("none");
  }

  /** Shows the "Admin" button to administrators only; closes the panel for anyone else. */
  setMe(me: Me | null): void {
    const admin = me?.isAdmin === true;
    this.toggle.hidden = !admin;
    if (!admin) this.setOpen(false);
  }

  /** The answer to a pick: who placed the pixel at (x, y), most recent first. */
  async pick(x: number, y: number): Promise<void> {
    this.setTapMode("none");
    await this.run(async () => {
      const { placements } = await api<{ placements: Placement[] }>("GET", `pixel?x=${x}&y=${y}`);
      const last = placements.find((p) => !p.reverted) ?? placements[0];
      if (!last) throw new Error(`Nobody has placed (${x}, ${y})`);
      await this.select(last.userId);
    });
  }

  private setOpen(open: boolean): void {
    this.panel.hidden = !open;
    this.toggle.setAttribute("aria-expanded", String(open));
    if (open) {
      void this.run(async () => {
        await Promise.all([this.loadSettings(), this.loadAudit(true), this.loadStats(), this.loadRegions()]);
      });
      if (this.statsTimer === null) {
        this.statsTimer = setInterval(() => void this.run(() => this.loadStats()), STATS_REFRESH_MS);
      }
    } else {
      if (this.statsTimer !== null) clearInterval(this.statsTimer);
      this.statsTimer = null;
      this.setTapMode("none");
      this.user = null;
      this.userBox.hidden = true;
      this.hooks.highlight([]);
      this.setArea(null);
      this.hideConfirm();
    }
  }

  private setTapMode(mode: "none" | "pick" | "corners"): void {
    this.tapMode = mode;
    this.corner = null;
    const picking = mode === "pick";
    this.pickButton.setAttribute("aria-pressed", String(picking));
    this.pickButton.textContent = picking ? "Click a pixel…" : "Pick a pixel";
    const selecting = mode === "corners";
    this.selectButton.setAttribute("aria-pressed", String(selecting));
    this.selectButton.textContent = selecting ? "Click two corners…" : "Select a rectangle";
    if (selecting) this.areaText.textContent = "Click one corner of the rectangle on the canvas";
    else if (!this.area) this.areaText.textContent = "No rectangle selected";
    else this.areaText.textContent = rectText(this.area);
  }

  private setArea(rect: Rect | null): void {
    this.area = rect;
    this.hooks.outline(rect);
    this.areaRollback.disabled = rect === null;
    this.areaReset.disabled = rect === null;
    this.regionAdd.disabled = rect === null;
    this.areaText.textContent = rect ? rectText(rect) : "No rectangle selected";
  }

  /** Shows the confirm step for a destructive action; it runs only on "Confirm". */
  private ask(text: string, action: () => Promise<void>): void {
    this.pendingConfirm = action;
    this.confirmText.textContent = text;
    this.confirmBox.hidden = false;
    el<HTMLButtonElement>("admin-confirm-no").focus();
  }

  private hideConfirm(): void {
    this.pendingConfirm = null;
    this.confirmBox.hidden = true;
  }

  private askAreaRollback(): void {
    const rect = this.area;
    if (!rect) return;
    const minutes = Number(this.areaSince.value);
    const window = ROLLBACK_WINDOWS.find((w) => w.minutes === minutes)?.label ?? "";
    this.ask(`Roll back every placement in ${rectText(rect)}, ${window}?`, async () => {
      const now = Date.now();
      const r = await api<Outcome>("POST", "rollback", { ...rect, from: rollbackSince(minutes, now), to: now });
      this.hooks.toast(outcomeText("Rolled back", r));
      await this.afterAreaAction();
    });
  }

  /** A reset of `rect`, or of the whole canvas when null. */
  private askReset(rect: Rect | null): void {
    const what = rect ? rectText(rect) : "the WHOLE canvas";
    this.ask(`Reset ${what} to colour 0? Every placement in it is rolled back.`, async () => {
      // The whole canvas is an explicit `{}`: the server resets nothing without a JSON body.
      const r = await api<Outcome>("POST", "reset-canvas", rect ?? {});
      this.hooks.toast(outcomeText("Reset", r));
      await this.afterAreaAction();
    });
  }

  private async afterAreaAction(): Promise<void> {
    const selected = this.user?.userId;
    await Promise.all([this.loadAudit(true), this.loadStats(), selected ? this.select(selected) : Promise.resolve()]);
  }

  /** Protects the selected rectangle in the chosen mode. */
  private async addRegion(): Promise<void> {
    const rect = this.area;
    if (!rect) return;
    const mode = this.regionMode.value;
    const minutes = Number(this.regionFor.value);
    const body: Record<string, unknown> = { ...rect, mode };
    if (mode === "slow") body.cooldownSeconds = Number(this.regionCooldown.value);
    if (minutes > 0) body.until = Date.now() + minutes * 60_000;
    const region = await api<Region>("POST", "regions", body);
    this.hooks.toast(`Protected: ${regionLabel(region, Date.now())}`);
    this.hooks.regionsChanged();
    await Promise.all([this.loadRegions(), this.loadAudit(true)]);
  }

  private async removeRegion(r: Region): Promise<void> {
    await api<Region>("DELETE", `regions/${encodeURIComponent(r.id)}`);
    this.hooks.toast(`No longer protected: ${rectText(r)}`);
    this.hooks.regionsChanged();
    await Promise.all([this.loadRegions(), this.loadAudit(true)]);
  }

  private async loadRegions(): Promise<void> {
    const { regions } = await api<{ regions: Region[] }>("GET", "regions");
    const now = Date.now();
    this.regionList.replaceChildren(
      ...regions.map((r) => {
        const li = item(regionLabel(r, now));
        li.classList.add("region", r.mode);
        const remove = document.createElement("button");
        remove.type = "button";
        remove.textContent = "Remove";
        remove.addEventListener("click", () => void this.run(() => this.removeRegion(r)));
        li.append(remove);
        return li;
      }),
    );
    if (regions.length === 0) this.regionList.replaceChildren(item("None"));
  }

  /** The spike alarms, each with a button lifting its automatic slow-down while in force. */
  private async loadAlarms(): Promise<void> {
    const { alarms } = await api<{ alarms: Alarm[] }>("GET", "alarms");
    const now = Date.now();
    const list = el("admin-alarms");
    list.replaceChildren(
      ...alarms.map((a) => {
        const li = item(alarmText(a, now));
        li.classList.add("alarm");
        if (a.slowedDown && a.regionId) {
          const lift = document.createElement("button");
          lift.type = "button";
          lift.textContent = "Lift the slow-down";
          const id = a.regionId;
          lift.addEventListener("click", () =>
            void this.run(async () => {
              await api<Region>("DELETE", `regions/${encodeURIComponent(id)}`);
              this.hooks.toast(`Slow-down of ${cornersText(a)} lifted`);
              this.hooks.regionsChanged();
              await Promise.all([this.loadAlarms(), this.loadRegions(), this.loadAudit(true)]);
            }),
          );
          li.append(lift);
        }
        return li;
      }),
    );
    if (alarms.length === 0) list.replaceChildren(item("None"));
  }

  private async loadStats(): Promise<void> {
    // The alarms come with the figures: refreshed as often, and after every change.
    const [s] = await Promise.all([api<Stats>("GET", "stats"), this.loadAlarms()]);
    el("admin-stat-online").textContent = String(s.playersOnline);
    el("admin-stat-rate").textContent = String(s.placementsLastMinute);
    el("admin-stat-banned").textContent = String(s.bannedUsers);
    el("admin-stat-cooldown").textContent = `${s.cooldownSeconds} s`;
    const top = s.topPlacers.map((p) => item(`${p.username} #${p.userId}: ${p.placements}`, () => void this.run(() => this.select(p.userId))));
    el("admin-top").replaceChildren(...(top.length ? top : [item("Nobody yet")]));
    el("admin-shards").replaceChildren(
      ...s.shards.map((sh) => {
        const li = item(shardText(sh));
        li.classList.toggle("down", sh.status !== "ok");
        return li;
      }),
    );
  }

  /** Runs a request, showing its error in the panel. */
  private async run(f: () => Promise<void>): Promise<void> {
    this.error.hidden = true;
    try {
      await f();
    } catch (e) {
      this.error.textContent = (e as Error).message;
      this.error.hidden = false;
    }
  }

  private async findByName(name: string): Promise<void> {
    if (!name) throw new Error("Enter the start of a name");
    const { users } = await api<{ users: AdminUser[] }>("GET", `users?name=${encodeURIComponent(name)}`);
    this.found.replaceChildren(...users.map((u) => item(this.userLabel(u), () => void this.run(() => this.select(u.userId)))));
    if (users.length === 0) this.found.replaceChildren(item("Nobody by that name"));
  }

  private userLabel(u: AdminUser): string {
    const tags = [u.isGuest ? "guest" : "", u.isAdmin ? "admin" : "", u.banned ? "banned" : ""].filter(Boolean);
    return `${u.username} #${u.userId}${tags.length ? ` (${tags.join(", ")})` : ""}`;
  }

  /** Loads a user and their recent placements, and outlines those on the canvas. */
  private async select(userId: string): Promise<void> {
    const r = await api<{ user: AdminUser; placements: Placement[] }>(
      "GET",
      `users/${encodeURIComponent(userId)}/placements?limit=${PLACEMENTS_LIMIT}`,
    );
    this.found.replaceChildren();
    this.showUser(r.user);
    const palette = this.hooks.palette();
    const now = Date.now();
    this.placementsList.replaceChildren(
      ...r.placements.map((p) => {
        const li = item(`(${p.x}, ${p.y}) ${timeText(p.placedAt, now)}${p.reverted ? " rolled back" : ""}`);
        const swatch = document.createElement("i");
        swatch.style.background = palette[p.color] ?? "transparent";
        li.prepend(swatch);
        li.classList.toggle("reverted", p.reverted);
        return li;
      }),
    );
    if (r.placements.length === 0) this.placementsList.replaceChildren(item("No placements"));
    this.hooks.highlight(highlightPixels(r.placements));
  }

  private showUser(u: AdminUser): void {
    this.user = u;
    this.userBox.hidden = false;
    this.userTitle.textContent = this.userLabel(u);
    this.banButton.textContent = u.banned ? "Unban" : "Ban";
    this.banButton.classList.toggle("danger", !u.banned);
  }

  private async setBanned(ban: boolean): Promise<void> {
    if (!this.user) return;
    const u = await api<AdminUser>("POST", ban ? "ban-user" : "unban-user", { userId: this.user.userId });
    this.showUser(u);
    this.hooks.toast(`${u.username} is ${u.banned ? "banned" : "no longer banned"}`);
    await Promise.all([this.loadAudit(true), this.loadStats()]);
  }

  /** A ban asks first; lifting one does not. */
  private askBan(): void {
    const u = this.user;
    if (!u) return;
    if (u.banned) {
      void this.run(() => this.setBanned(false));
      return;
    }
    this.ask(`Ban ${u.username}? They can no longer place, on every edge at once.`, () => this.setBanned(true));
  }

  private askRollback(): void {
    const u = this.user;
    if (!u) return;
    const minutes = Number(this.since.value);
    const window = ROLLBACK_WINDOWS.find((w) => w.minutes === minutes)?.label ?? "";
    this.ask(`Roll back every placement of ${u.username}, ${window}?`, async () => {
      const since = rollbackSince(minutes, Date.now());
      const r = await api<Outcome>("POST", "rollback", { userId: u.userId, since });
      this.hooks.toast(outcomeText("Rolled back", r));
      await Promise.all([this.select(u.userId), this.loadAudit(true), this.loadStats()]);
    });
  }

  private async loadSettings(): Promise<void> {
    const { cooldownSeconds } = await api<{ cooldownSeconds: number }>("GET", "settings");
    this.cooldownInput.value = String(cooldownSeconds);
  }

  private async saveCooldown(): Promise<void> {
    const problem = cooldownProblem(this.cooldownInput.value);
    if (problem) throw new Error(problem);
    const { cooldownSeconds } = await api<{ cooldownSeconds: number }>("PUT", "settings", {
      cooldownSeconds: Number(this.cooldownInput.value),
    });
    this.cooldownInput.value = String(cooldownSeconds);
    // The figures show the new cooldown at once, not at their next refresh.
    await Promise.all([this.loadAudit(true), this.loadStats()]);
  }

  /** The audit log page the pager is on (the newest after `fromStart`). */
  private async loadAudit(fromStart = false): Promise<void> {
    if (fromStart) this.pager.reset();
    const before = this.pager.before;
    const query = `audit-log?limit=${AUDIT_LIMIT}${before ? `&before=${encodeURIComponent(before)}` : ""}`;
    const { entries, next } = await api<{ entries: AuditEntry[]; next: string | null }>("GET", query);
    this.pager.loaded(next);
    const now = Date.now();
    this.auditList.replaceChildren(...entries.map((e) => auditItem(e, now)));
    if (entries.length === 0) this.auditList.replaceChildren(item("Nothing yet"));
    this.auditNewer.disabled = !this.pager.hasNewer;
    this.auditOlder.disabled = !this.pager.hasOlder;
    this.auditPage.textContent = `Page ${this.pager.page}`;
  }
}
