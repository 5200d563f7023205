// The admin panel: shown only to an administrator (GET /api/v1/auth/me says
// isAdmin). Find a user by name or by picking a pixel, see and highlight their
// recent placements, ban or unban them, roll their placements back, change the
// cooldown, read the audit log. Talks to /api/v1/admin/*; the formatting and
// the rules are pure functions, tested in tests/unit.

import type { Me } from "./account";
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
  actorName: string;
  action: string;
  details: unknown;
  createdAt: number;
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

/** One line of the audit log: "alice ban-user userId=17". */
export function auditText(e: AuditEntry): string {
  const details =
    e.details && typeof e.details === "object"
      ? Object.entries(e.details as Record<string, unknown>)
          .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : String(v)}`)
          .join(" ")
      : "";
  return `${e.actorName} ${e.action}${details ? ` ${details}` : ""}`;
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
async function api<T>(method: "GET" | "POST" | "PUT", path: string, body?: object): Promise<T> {
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
  /** The palette, to show a placement's colour. */
  palette(): readonly string[];
  toast(message: string): void;
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
  private error = el("admin-error");
  private user: AdminUser | null = null;
  /** While on, a click on the canvas asks who placed that pixel instead of painting. */
  picking = false;

  constructor(private hooks: AdminHooks) {
    this.toggle.addEventListener("click", () => this.setOpen(this.panel.hidden));
    el("admin-close").addEventListener("click", () => this.setOpen(false));
    el<HTMLFormElement>("admin-find").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.run(() => this.findByName(this.nameInput.value.trim()));
    });
    this.pickButton.addEventListener("click", () => this.setPicking(!this.picking));
    this.banButton.addEventListener("click", () => void this.run(() => this.setBanned(!this.user?.banned)));
    el("admin-rollback").addEventListener("click", () => void this.run(() => this.rollback()));
    el<HTMLFormElement>("admin-settings").addEventListener("submit", (e) => {
      e.preventDefault();
      void this.run(() => this.saveCooldown());
    });
    el("admin-audit-refresh").addEventListener("click", () => void this.run(() => this.loadAudit()));
    this.since.replaceChildren(
      ...ROLLBACK_WINDOWS.map((w) => Object.assign(document.createElement("option"), { value: String(w.minutes), textContent: w.label })),
    );
  }

  /** Shows the "Admin" button to administrators only; closes the panel for anyone else. */
  setMe(me: Me | null): void {
    const admin = me?.isAdmin === true;
    this.toggle.hidden = !admin;
    if (!admin) this.setOpen(false);
  }

  /** The answer to a pick: who placed the pixel at (x, y), most recent first. */
  async pick(x: number, y: number): Promise<void> {
    this.setPicking(false);
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
        await Promise.all([this.loadSettings(), this.loadAudit()]);
      });
    } else {
      this.setPicking(false);
      this.user = null;
      this.userBox.hidden = true;
      this.hooks.highlight([]);
    }
  }

  private setPicking(on: boolean): void {
    this.picking = on;
    this.pickButton.setAttribute("aria-pressed", String(on));
    this.pickButton.textContent = on ? "Click a pixel…" : "Pick a pixel";
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
    await this.loadAudit();
  }

  private async rollback(): Promise<void> {
    if (!this.user) return;
    const since = rollbackSince(Number(this.since.value), Date.now());
    const r = await api<{ reverted: number; restored: number; failed: number }>("POST", "rollback", { userId: this.user.userId, since });
    this.hooks.toast(
      `Rolled back ${r.reverted} placement${r.reverted === 1 ? "" : "s"}, ${r.restored} pixel${r.restored === 1 ? "" : "s"} restored` +
        (r.failed > 0 ? `, ${r.failed} failed: roll back again` : ""),
    );
    await Promise.all([this.select(this.user.userId), this.loadAudit()]);
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
    await this.loadAudit();
  }

  private async loadAudit(): Promise<void> {
    const { entries } = await api<{ entries: AuditEntry[] }>("GET", `audit-log?limit=${AUDIT_LIMIT}`);
    const now = Date.now();
    this.auditList.replaceChildren(...entries.map((e) => item(`${timeText(e.createdAt, now)} ${auditText(e)}`)));
    if (entries.length === 0) this.auditList.replaceChildren(item("Nothing yet"));
  }
}
