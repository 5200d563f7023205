// The panels around the canvas: status, pointer, zoom, palette, cooldown,
// confirm button, overview note and toasts. Plain DOM, updated only on change.

import type { Status } from "./connection";

/** The element of index.html with this id. */
export function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} missing from index.html`);
  return e as T;
}

/** Human text for an error code of a rejected placement. */
export function rejectionText(code: string, message: string, cooldownMs?: number): string {
  switch (code) {
    case "RATE_LIMITED":
      // Without a cooldown it is the network's budget or a slow region: the server says which.
      return cooldownMs !== undefined ? `Too soon: wait ${Math.ceil(cooldownMs / 1000)} s` : message || "Too many requests: slow down";
    case "REGION_LOCKED":
      return "This area is locked by the moderators: nobody may place here now";
    case "REGION_REGISTERED_ONLY":
      return "Only registered players may place in this area: sign up to paint here";
    case "BANNED":
      return "You are banned from placing pixels";
    case "INVALID_COORDS":
      return "That pixel is outside the canvas";
    case "INVALID_COLOR":
      return "That colour is not in the palette";
    case "UNAVAILABLE":
      return "The server could not place it: try again";
    case "UNAUTHORIZED":
      return "Session expired: reconnecting";
    default:
      return message || code;
  }
}

/** "Ready" or "m:ss" left. */
export function cooldownText(ms: number): string {
  if (ms <= 0) return "Ready";
  const s = Math.ceil(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** What the page knows about whether the player can play, for the notice under the top bar. */
export interface PlayState {
  live: boolean;
  /** The connection was live at least once since the page opened. */
  everLive: boolean;
  /** Ms until the next connection attempt, or null while none is scheduled. */
  retryIn: number | null;
  /** Ms until a guest session can be made (over the per-address guest limit), or null. */
  limitedFor: number | null;
  banned: boolean;
}

/** The lasting notice: why the player cannot place now, and the one thing to do about it. */
export interface Notice {
  kind: "limited" | "offline" | "banned";
  text: string;
  action: { id: "signin" | "retry"; label: string } | null;
}

/** The notice for a play state, or null when the player can play. */
export function noticeFor(s: PlayState): Notice | null {
  if (!s.live && s.limitedFor !== null) {
    const when = s.limitedFor > 0 ? `you can place in ${cooldownText(s.limitedFor)}` : "trying again now";
    return {
      kind: "limited",
      text: `Too many new players from your network just now: you are watching the live canvas, ${when}.`,
      action: { id: "signin", label: "Sign in to play now" },
    };
  }
  if (!s.live) {
    const lost = s.everLive ? "Connection lost" : "Cannot reach the server";
    if (s.retryIn === null) return { kind: "offline", text: `${lost}: reconnecting…`, action: null };
    return { kind: "offline", text: `${lost}: retrying in ${Math.ceil(s.retryIn / 1000)} s`, action: { id: "retry", label: "Retry now" } };
  }
  if (s.banned) return { kind: "banned", text: "You are banned from placing pixels.", action: null };
  return null;
}

/** The dock's sound toggle: a speaker with waves, or crossed out. */
const SPEAKER = '<path fill="currentColor" d="M4 9h4l5-4v14l-5-4H4z"/>';
const SOUND_ON = `<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">${SPEAKER}<path fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" d="M16 9a4 4 0 0 1 0 6M18.5 6.5a7.5 7.5 0 0 1 0 11"/></svg>`;
const SOUND_OFF = `<svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">${SPEAKER}<path fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" d="M16 9l5 6M21 9l-5 6"/></svg>`;

export class Ui {
  readonly board = el<HTMLCanvasElement>("board");
  private status = el("status");
  private statusText = this.status.querySelector("span")!;
  private pointerSwatch = el("pointer-swatch");
  private pointerText = el("pointer-text");
  private zoom = el("zoom");
  private reticle = el("reticle");
  private overviewNote = el("overview-note");
  private toastEl = el("toast");
  private toastTimer: ReturnType<typeof setTimeout> | null = null;
  private cooldown = el("cooldown");
  private confirm = el<HTMLButtonElement>("confirm");
  private palette = el("palette");
  private shown = new Map<HTMLElement, string>();
  private notice = el("notice");
  private noticeText = el("notice-text");
  private noticeAction = el<HTMLButtonElement>("notice-action");
  private dock = el("dock");

  /** Called when the confirm button (touch flow) is pressed. */
  onConfirm: () => void = () => {};
  /** Called when a palette colour is chosen. */
  onColor: (index: number) => void = () => {};
  /** Called when the notice's button is pressed. */
  onNoticeAction: (id: "signin" | "retry") => void = () => {};

  constructor() {
    this.confirm.addEventListener("click", () => this.onConfirm());
    this.noticeAction.addEventListener("click", () => {
      const id = this.noticeAction.dataset.action;
      if (id === "signin" || id === "retry") this.onNoticeAction(id);
    });
  }

  /** Shows or hides the lasting notice; the palette is usable only without one. */
  setNotice(n: Notice | null): void {
    this.notice.hidden = n === null;
    this.dock.classList.toggle("off", n !== null);
    for (const b of this.palette.children) (b as HTMLButtonElement).disabled = n !== null;
    if (!n) return;
    this.notice.className = n.kind;
    this.text(this.noticeText, n.text);
    this.noticeAction.hidden = n.action === null;
    if (n.action) {
      this.noticeAction.dataset.action = n.action.id;
      this.text(this.noticeAction, n.action.label);
    }
  }

  private text(e: HTMLElement, t: string): void {
    if (this.shown.get(e) !== t) {
      this.shown.set(e, t);
      e.textContent = t;
    }
  }

  setStatus(s: Status | "watching"): void {
    this.status.className = `status ${s}`;
    this.statusText.textContent = s;
  }

  setPalette(colors: readonly string[], selected: number): void {
    this.palette.replaceChildren(
      ...colors.map((c, i) => {
        const b = document.createElement("button");
        b.type = "button";
        b.style.background = c;
        b.setAttribute("role", "radio");
        b.setAttribute("aria-label", `colour ${i} ${c}`);
        b.dataset.index = String(i);
        b.addEventListener("click", () => this.onColor(i));
        return b;
      }),
    );
    this.selectColor(selected);
  }

  selectColor(index: number): void {
    for (const b of this.palette.children) {
      (b as HTMLElement).setAttribute("aria-checked", String((b as HTMLElement).dataset.index === String(index)));
    }
  }

  /** The pixel under the pointer, the selected one or the view's centre, with the colour it shows. */
  setPointer(p: { x: number; y: number; color: string }): void {
    this.text(this.pointerText, `(${p.x}, ${p.y})`);
    this.pointerSwatch.style.background = p.color;
  }

  setZoom(zoom: number): void {
    this.text(this.zoom, `${zoom >= 10 ? Math.round(zoom) : zoom.toFixed(1)}x`);
  }

  /** Outlines a screen rectangle (CSS px) filled with the colour a placement would give it, or hides the reticle. */
  setReticle(r: { x: number; y: number; size: number; color: string } | null): void {
    this.reticle.hidden = r === null;
    if (!r) return;
    this.reticle.style.background = r.color;
    const pad = 2;
    this.reticle.style.width = `${r.size + 2 * pad}px`;
    this.reticle.style.height = `${r.size + 2 * pad}px`;
    this.reticle.style.transform = `translate(${r.x - pad}px, ${r.y - pad}px)`;
  }

  setOverview(on: boolean): void {
    this.overviewNote.hidden = !on;
  }

  /** The dock's line: the cooldown, or why placing is off (`blocked`: "Offline", "Watching", "Banned"). */
  setCooldown(ms: number, blocked: string | null = null): void {
    this.text(this.cooldown, blocked ?? (ms > 0 ? `Next pixel in ${cooldownText(ms)}` : "Ready"));
    this.cooldown.classList.toggle("waiting", blocked === null && ms > 0);
  }

  /** The touch flow's button: shown while a pixel is selected. */
  setConfirm(c: { x: number; y: number; color: string; waitMs: number } | null): void {
    this.confirm.hidden = c === null;
    if (!c) return;
    const swatch = document.createElement("i");
    swatch.style.background = c.color;
    const label = c.waitMs > 0 ? `Wait ${cooldownText(c.waitMs)}` : `Place (${c.x}, ${c.y})`;
    if (this.shown.get(this.confirm) !== label + c.color) {
      this.shown.set(this.confirm, label + c.color);
      this.confirm.replaceChildren(swatch, document.createTextNode(label));
    }
    this.confirm.disabled = c.waitMs > 0;
  }

  /** The sound toggle of the dock. */
  setSound(on: boolean): void {
    const b = el("sound-button");
    b.setAttribute("aria-pressed", String(on));
    b.innerHTML = on ? SOUND_ON : SOUND_OFF;
    b.title = on ? "A sound plays when you can place again (click to mute)" : "Play a sound when you can place again";
  }

  toast(message: string, ms = 3000): void {
    this.toastEl.textContent = message;
    this.toastEl.hidden = false;
    if (this.toastTimer) clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => (this.toastEl.hidden = true), ms);
  }
}
