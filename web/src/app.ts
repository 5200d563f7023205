// The controller: wires the connection, the tile store, subscriptions,
// placements, the renderer and the panels. Everything with a rule worth
// testing lives in a pure module; this file only routes events between them.

import { AccountPanel } from "./account";
import { AdminPanel } from "./admin";
import { Connection, type Status } from "./connection";
import { HistoryView } from "./history";
import { attachGestures, type KeyCommand } from "./input";
import { Minimap } from "./minimap";
import { colorChoice, initialColor, remember, remembered } from "./prefs";
import { chime, READY_TONES } from "./sound";
import { paletteTable } from "./palette";
import { Placements } from "./placements";
import {
  encodePlace,
  encodeSubscribe,
  encodeUnsubscribe,
  TILE_SIZE,
  type CanvasInfo,
  type ErrorMsg,
  type ServerMsg,
  type SubscribeEntry,
} from "./protocol";
import { RegionsView } from "./regions";
import { Renderer } from "./renderer";
import { entryFor, Subscriptions, wantedTiles } from "./subscriptions";
import { expectedAt, isDamage, nextWrong, templateRgba, TemplateView, type Template } from "./templates";
import { TimelapseView } from "./timelapse";
import { keyTx, keyTy, tileKey, TileStore } from "./tiles";
import { cooldownText, el, noticeFor, rejectionText, Ui } from "./ui";
import {
  canvasToScreen,
  clampView,
  clampZoom,
  defaultView,
  formatHash,
  DEFAULT_ZOOM,
  panBy,
  pixelAt,
  screenToCanvas,
  viewFromHash,
  visibleTiles,
  zoomAt,
  type Size,
  type View,
} from "./view";

/** Subscription changes go out at most this often (the server allows 50 frames/s). */
const SUBSCRIBE_THROTTLE_MS = 100;
/** The URL hash follows the view at most this often. */
const HASH_THROTTLE_MS = 300;
/** Overview refresh period. */
const OVERVIEW_REFRESH_MS = 3000;
/** Tiles kept in memory beyond those in view, to come back to without a snapshot. */
const TILE_CACHE = 768;
/** Extra ring of tiles subscribed around the view, so pans show live tiles at once. */
const MARGIN_TILES = 1;
/** Gaps found within this long are resynchronised in one subscribe frame. */
const GAP_BATCH_MS = 20;
/** Tapping the overview zooms in to this. */
const TAP_ZOOM = 8;
/** A finger's tap below this zoom zooms in to it first: a pixel this big is easy to aim at. */
const AIM_ZOOM = 24;
/** The + and − buttons zoom by this. */
const BUTTON_ZOOM = 1.5;
const TITLE = "place";

export class App {
  private ui = new Ui();
  private placements = new Placements();
  private renderer = new Renderer(this.ui.board, this.placements);
  private store = new TileStore(this.renderer);
  private subs = new Subscriptions();
  private conn = new Connection(wsUrl(), {
    onOpen: () => {},
    onMessage: (m) => this.onMessage(m),
    onClose: () => this.onClose(),
    onStatus: (s) => this.onStatus(s),
    onLimited: (ms) => void this.onLimited(ms),
  });
  private admin = new AdminPanel({
    highlight: (pixels) => this.renderer.setHighlights(pixels),
    outline: (rect) => this.renderer.setSelection(rect),
    palette: () => this.info?.palette ?? [],
    toast: (m) => this.ui.toast(m),
    regionsChanged: () => void this.regions.refresh(),
  });
  private regions = new RegionsView({ draw: (regions) => this.renderer.setRegions(regions) });
  private history = new HistoryView({
    palette: () => this.info?.palette ?? [],
    heat: (layer, opacity) => this.renderer.setHeat(layer, opacity),
    restrictions: (x, y) => this.regions.reasonsAt(x, y),
    me: () => this.account.user,
  });
  private timelapse = new TimelapseView({
    toast: (m) => this.ui.toast(m),
    signedIn: () => this.account.signedIn,
    view: () => (this.info ? { ...this.view, screen: this.size, canvas: { width: this.info.width, height: this.info.height } } : null),
  });
  private minimap = new Minimap(
    (x, y) => this.setView({ cx: x + 0.5, cy: y + 0.5, zoom: Math.max(this.view.zoom, DEFAULT_ZOOM) }),
    (data) => this.setWhole(data),
  );
  /** The whole canvas as last fetched (minimap, overview), with live changes applied: palette indices. */
  private whole: Uint8Array | null = null;
  private templates = new TemplateView({
    palette: () => this.info?.palette ?? [],
    centre: () => ({ x: Math.floor(this.view.cx), y: Math.floor(this.view.cy) }),
    canvasSize: () => ({ width: this.info?.width ?? 0, height: this.info?.height ?? 0 }),
    show: (t, opacity) => {
      this.renderer.setTemplate(t && this.info ? { x: t.x, y: t.y, img: templateRgba(t, this.info.palette), opacity } : null);
      this.scheduleReconcile(); // its tiles are subscribed too, for damage alerts
    },
    nextWrong: () => this.nextWrongPixel(),
    goTo: (x, y) => this.goTo(x, y),
    toast: (m) => this.ui.toast(m),
  });
  /** A sound plays when the cooldown is over. */
  private sound = remembered("sound") === "on";
  /** The cooldown ran since the last placement, so "ready" is news (title, sound). */
  private waited = false;
  /** After a sign-in or sign-out the socket reconnects as whoever the new cookie says. */
  private account = new AccountPanel(
    () => {
      this.banned = false; // another user now: the server says again if this one is banned
      this.conn.renew();
    },
    (me) => this.admin.setMe(me),
  );

  private info: CanvasInfo | null = null;
  private view: View = { cx: 0, cy: 0, zoom: 1 };
  private size: Size = { width: window.innerWidth, height: window.innerHeight };
  private status: Status = "connecting";
  private live = false;
  private everLive = false;
  /** Epoch ms until which no guest session can be made here (read-only mode), or null. */
  private limitedUntil: number | null = null;
  /** A placement was refused with BANNED (until the session changes). */
  private banned = false;
  private overview = false;
  private color = 0;
  /** Epoch ms from which this user may place again. */
  private nextPlacementAt = 0;
  private cooldownBefore = new Map<number, number>();
  /** Where the mouse is (CSS px), for the reticle and pointer panel. */
  private hoverAt: { x: number; y: number } | null = null;
  /** The pixel a tap selected (touch flow), waiting for the confirm button. */
  private selected: { x: number; y: number } | null = null;
  private subscribeTimer: ReturnType<typeof setTimeout> | null = null;
  private hashTimer: ReturnType<typeof setTimeout> | null = null;
  private overviewTimer: ReturnType<typeof setTimeout> | null = null;
  private overviewEtag: string | null = null;
  private overviewInFlight = false;
  private gaps: SubscribeEntry[] = [];
  /** Messages received, by type (debug hook). */
  private received: Record<ServerMsg["type"], number> = { welcome: 0, tile: 0, pixels: 0, success: 0, error: 0, pong: 0, cooldown: 0, canvas: 0 };

  start(): void {
    attachGestures(this.ui.board, {
      pan: (dx, dy) => {
        // A finger's long-press tooltip goes when the finger pans; the mouse's follows it.
        if (!this.hoverAt) this.history.hover(null);
        this.setView(panBy(this.view, dx, dy));
      },
      zoomAt: (sx, sy, f) => this.zoomBy(sx, sy, f),
      hover: (sx, sy) => {
        this.hoverAt = { x: sx, y: sy };
        this.updatePointer();
      },
      leave: () => {
        this.hoverAt = null;
        this.history.hover(null);
        this.updatePointer();
      },
      tap: (sx, sy, touch) => {
        if (touch) this.history.hover(null);
        this.tap(sx, sy, touch);
      },
      longPress: (sx, sy) => {
        if (!this.info) return;
        const px = pixelAt(this.view, this.size, sx, sy, this.info.width, this.info.height);
        if (px) this.history.press({ ...px, sx, sy });
      },
      command: (c) => this.command(c),
    });
    this.ui.onColor = (i) => this.pickColor(i);
    el("zoom-in").addEventListener("click", () => this.zoomBy(this.size.width / 2, this.size.height / 2, BUTTON_ZOOM));
    el("zoom-out").addEventListener("click", () => this.zoomBy(this.size.width / 2, this.size.height / 2, 1 / BUTTON_ZOOM));
    el("copy-link").addEventListener("click", () => void this.copyLink());
    el("help-button").addEventListener("click", () => this.toggleHelp());
    el("sound-button").addEventListener("click", () => {
      this.sound = !this.sound;
      remember("sound", this.sound ? "on" : "off");
      this.ui.setSound(this.sound);
      if (this.sound) chime(READY_TONES.slice(0, 1)); // says what it will sound like
    });
    this.ui.setSound(this.sound);
    this.ui.onNoticeAction = (id) => (id === "signin" ? this.account.open() : this.conn.retryNow());
    this.ui.onConfirm = () => {
      if (this.selected) this.place(this.selected.x, this.selected.y);
    };
    window.addEventListener("resize", () => this.resize());
    document.addEventListener("visibilitychange", () => this.tick());
    window.addEventListener("hashchange", () => {
      if (!this.info || location.hash === formatHash(this.view)) return;
      const v = viewFromHash(location.hash, this.size, this.info.width, this.info.height);
      if (v) this.setView(v);
    });
    setInterval(() => this.tick(), 250);
    this.conn.start();
    this.regions.start();
    exposeDebugHook(this);
  }

  // ---- connection events ----

  private onStatus(s: Status): void {
    this.status = s;
    this.ui.setStatus(s);
    this.tick();
  }

  /**
   * Over the per-address guest limit: the canvas is shown read-only (the overview, refreshed
   * every few seconds, at any zoom) until a guest can be made or the player signs in.
   */
  private async onLimited(retryAfterMs: number): Promise<void> {
    this.limitedUntil = Date.now() + retryAfterMs;
    this.ui.setStatus("watching");
    if (!this.info) {
      try {
        const res = await fetch("/api/v1/canvas/info", { credentials: "same-origin" });
        if (!res.ok) throw new Error(`GET /api/v1/canvas/info: ${res.status}`);
        if (!this.info) this.initCanvas((await res.json()) as CanvasInfo);
      } catch (e) {
        console.warn("place: canvas info:", e);
        return;
      }
    }
    if (!this.live) this.setOverviewMode(true);
    this.tick();
  }

  private onClose(): void {
    this.live = false;
    this.subs.reset();
    this.gaps = [];
    for (const p of this.placements.dropUnanswered()) {
      this.refreshPixel(p.x, p.y);
      this.restoreCooldown(p.requestId);
    }
  }

  private onMessage(m: ServerMsg): void {
    this.received[m.type]++;
    switch (m.type) {
      case "welcome":
        this.onWelcome(m.canvasInfo, m.cooldownRemaining);
        void this.account.refresh();
        break;
      case "tile":
        this.store.onTile(m.tx, m.ty, m.seq, m.data);
        break;
      case "pixels":
        this.onPixels(m.tx, m.ty, m.firstSeq, m.events);
        break;
      case "success": {
        const p = this.placements.confirm(m.requestId, Date.now());
        this.cooldownBefore.delete(m.requestId);
        if (p) this.history.placed(p.x, p.y, p.color, this.account.user);
        if (p && this.templates.template && expectedAt(this.templates.template, p.x, p.y) >= 0) this.templates.progressSoon();
        this.setNextPlacement(m.nextPlacement);
        if (p && (this.overview || this.truthAt(p.x, p.y) === p.color)) {
          if (this.overview) this.renderer.setOverviewPixel(p.x, p.y, p.color);
          this.placements.remove(p.requestId);
          this.refreshPixel(p.x, p.y);
        }
        this.tick();
        break;
      }
      case "error":
        this.onError(m);
        this.tick();
        break;
      case "pong":
        break;
      case "cooldown":
        // An administrator changed the cooldown: the countdown follows the server's new wait.
        if (this.info) this.info = { ...this.info, cooldownSeconds: m.cooldown };
        this.nextPlacementAt = Date.now() + Math.max(0, m.cooldownRemaining);
        this.ui.toast(`The cooldown is now ${m.cooldown} s`);
        this.tick();
        break;
      case "canvas":
        this.growCanvas(m.width, m.height);
        break;
    }
  }

  private onWelcome(info: CanvasInfo, cooldownRemaining: number): void {
    performance.mark("place:welcome");
    this.initCanvas(info);
    this.nextPlacementAt = Date.now() + Math.max(0, cooldownRemaining);
    this.live = true;
    this.everLive = true;
    this.limitedUntil = null;
    this.conn.markLive();
    // Every held tile is stale until the server answers its resubscribe.
    this.store.markAllResyncing(performance.now());
    this.reconcile();
  }

  /**
   * An administrator grew the canvas: the same tiles at the same places, more of them. The
   * renderer, minimap and view bounds take the new size at once; the tiles held stay, and the
   * view subscribes to the new ones it shows.
   */
  private growCanvas(width: number, height: number): void {
    const old = this.info;
    if (!old || (width <= old.width && height <= old.height)) return;
    const info = { ...old, width: Math.max(width, old.width), height: Math.max(height, old.height) };
    this.info = info;
    const table = paletteTable(info.palette);
    this.renderer.setCanvas(info.width, info.height, table);
    this.minimap.setCanvas(info.width, info.height, table);
    // Laid out for the old width: the next whole-canvas fetch brings it back.
    this.whole = null;
    this.overviewEtag = null;
    if (this.overview) void this.refreshOverview();
    this.setView(this.view);
    this.ui.toast(`The canvas grew to ${info.width}×${info.height}`);
    this.tick();
  }

  /** Takes the canvas's parameters: the first time, or when a restarted server has others. */
  private initCanvas(info: CanvasInfo): void {
    const old = this.info;
    if (old && info.width >= old.width && info.height >= old.height && (info.width > old.width || info.height > old.height)) {
      // It grew while we were away: nothing held moved.
      this.growCanvas(info.width, info.height);
      this.info = { ...info };
      return;
    }
    this.info = info;
    const resized = old !== null && (old.width !== info.width || old.height !== info.height);
    if (resized) for (const k of [...this.store.keys()]) this.store.drop(k);
    if (old === null || resized || old.palette.join() !== info.palette.join()) {
      // First connection, or a server restarted with another canvas.
      const table = paletteTable(info.palette);
      this.renderer.setCanvas(info.width, info.height, table);
      this.minimap.setCanvas(info.width, info.height, table);
      if (this.color >= info.palette.length || old === null) this.color = initialColor(info.palette, remembered("color"));
      this.ui.setPalette(info.palette, this.color);
      for (const k of this.store.keys()) this.renderer.tileReplaced(this.store.get(k)!);
    }
    if (old === null || resized) {
      const v = viewFromHash(location.hash, this.size, info.width, info.height) ?? defaultView(this.size, info.width, info.height);
      this.setView(v);
    }
    if (old === null) void this.templates.openFromUrl();
  }

  private onPixels(tx: number, ty: number, firstSeq: number, events: Uint8Array): void {
    const befores = this.templates.template ? this.templateBefores(tx, ty, events) : null;
    const outcome = this.store.onPixels(tx, ty, firstSeq, events, performance.now());
    if (outcome === "applied" && befores) this.checkDamage(befores);
    if (outcome === "applied") {
      for (let i = 0; i + 2 < events.length; i += 3) {
        const x = tx * TILE_SIZE + events[i];
        const y = ty * TILE_SIZE + events[i + 1];
        // Whoever placed these, the history kept of those pixels is stale now.
        this.history.changed(x, y, events[i + 2]);
        this.minimap.setPixel(x, y, events[i + 2]);
        if (this.whole && this.info) this.whole[y * this.info.width + x] = events[i + 2];
      }
    }
    if (outcome === "gap") {
      const key = tileKey(tx, ty);
      if (!this.subs.subscribed.has(key)) return;
      // Collected for a moment and sent as one frame.
      if (this.gaps.length === 0) setTimeout(() => this.flushGaps(), GAP_BATCH_MS);
      this.gaps.push(entryFor(key, this.store));
    } else if (outcome === "applied" && this.placements.size > 0) {
      for (let i = 0; i + 2 < events.length; i += 3) {
        const x = tx * TILE_SIZE + events[i];
        const y = ty * TILE_SIZE + events[i + 1];
        for (const p of this.placements.settle(x, y, events[i + 2])) this.refreshPixel(p.x, p.y);
      }
    }
  }

  private flushGaps(): void {
    if (this.gaps.length > 0 && this.live) this.conn.send(encodeSubscribe(this.gaps));
    this.gaps = [];
  }

  private onError(m: ErrorMsg): void {
    if (m.requestId !== undefined && m.code === "UNAVAILABLE" && m.retryAfter !== undefined) {
      // Nothing was placed and the server says when to ask again (a shard's tiles are moving):
      // the pixel stays shown, pending, and is sent again by `tick`; the cooldown stays taken.
      const pending = this.placements.retryLater(m.requestId, Date.now(), m.retryAfter);
      if (pending) {
        if (pending.retries === 1) this.ui.toast("Your pixel is pending: the server is busy, trying again");
        return;
      }
    }
    const p = m.requestId !== undefined ? this.placements.remove(m.requestId) : undefined;
    if (p) {
      this.refreshPixel(p.x, p.y);
      this.restoreCooldown(p.requestId);
      if (m.code === "BANNED") this.banned = true;
      else this.ui.toast(rejectionText(m.code, m.message, m.cooldownRemaining));
      // Refused for a region this page may not know of yet: outline it now.
      if (m.code.startsWith("REGION_") || (m.code === "RATE_LIMITED" && m.cooldownRemaining === undefined)) {
        void this.regions.refresh();
      }
    }
    if (m.cooldownRemaining !== undefined) this.nextPlacementAt = Date.now() + m.cooldownRemaining;
    if (m.requestId !== undefined) return; // the answer to a placement
    if (m.code === "TOO_MANY_TILES" || m.code === "RATE_LIMITED" || m.code === "BAD_REQUEST") {
      // A subscription frame was refused or dropped: start the subscription over.
      console.warn(`place: ${m.code}: ${m.message}; resubscribing`);
      this.resubscribeAll(1000);
    } else if (m.code !== "UNAUTHORIZED") {
      this.ui.toast(rejectionText(m.code, m.message));
    }
  }

  private resubscribeAll(delayMs: number): void {
    setTimeout(() => {
      if (!this.live) return;
      const all = [...this.subs.subscribed].map((k) => ({ tx: keyTx(k), ty: keyTy(k) }));
      if (all.length > 0) this.conn.send(encodeUnsubscribe(all));
      this.subs.reset();
      this.reconcile();
    }, delayMs);
  }

  // ---- view and subscriptions ----

  private setView(v: View): void {
    if (!this.info) return;
    this.view = clampView(v, this.size, this.info.width, this.info.height);
    this.renderer.setView(this.view, this.size, window.devicePixelRatio || 1);
    const w = this.size.width / this.view.zoom;
    const h = this.size.height / this.view.zoom;
    this.minimap.setView({ x: this.view.cx - w / 2, y: this.view.cy - h / 2, width: w, height: h });
    this.timelapse.follow();
    this.ui.setZoom(this.view.zoom);
    this.updatePointer();
    this.scheduleReconcile();
    this.scheduleHash();
  }

  /** Zooms around a screen point; at the zoom limits the point stays put too. */
  private zoomBy(sx: number, sy: number, factor: number): void {
    if (!this.info) return;
    const zoom = clampZoom(this.view.zoom * factor, this.size, this.info.width, this.info.height);
    this.setView(zoomAt(this.view, this.size, sx, sy, zoom));
  }

  private resize(): void {
    this.size = { width: window.innerWidth, height: window.innerHeight };
    this.minimap.resize();
    this.setView(this.view);
  }

  private scheduleHash(): void {
    if (this.hashTimer) return;
    this.hashTimer = setTimeout(() => {
      this.hashTimer = null;
      history.replaceState(null, "", formatHash(this.view));
    }, HASH_THROTTLE_MS);
  }

  private scheduleReconcile(): void {
    if (this.subscribeTimer) return;
    this.subscribeTimer = setTimeout(() => {
      this.subscribeTimer = null;
      this.reconcile();
    }, SUBSCRIBE_THROTTLE_MS);
  }

  /** Moves the subscription to the tiles in view, or to overview mode. */
  private reconcile(): void {
    if (this.info && !this.live && this.limitedUntil !== null) this.setOverviewMode(true);
    if (!this.info || !this.live) return;
    const { width, height, maxSubscribedTiles } = this.info;
    const visible = visibleTiles(this.view, this.size, width, height, TILE_SIZE);
    const margin = visibleTiles(this.view, this.size, width, height, TILE_SIZE, MARGIN_TILES);
    const wanted = wantedTiles(visible, margin, maxSubscribedTiles);
    this.addTemplateTiles(wanted, maxSubscribedTiles);
    this.setOverviewMode(wanted === null);
    const plan = this.subs.plan(wanted ?? new Set(), this.store);
    if (plan.unsubscribe.length > 0) this.conn.send(encodeUnsubscribe(plan.unsubscribe));
    if (plan.subscribe.length > 0) {
      // Nearest the centre first: the middle of the screen fills in first.
      const ctx = this.view.cx / TILE_SIZE - 0.5;
      const cty = this.view.cy / TILE_SIZE - 0.5;
      plan.subscribe.sort((a, b) => Math.hypot(a.tx - ctx, a.ty - cty) - Math.hypot(b.tx - ctx, b.ty - cty));
      const now = performance.now();
      for (const e of plan.subscribe) {
        const t = this.store.get(tileKey(e.tx, e.ty));
        if (t) t.resyncSince = now;
      }
      this.conn.send(encodeSubscribe(plan.subscribe));
    }
    if (wanted) {
      this.store.touch(wanted);
      this.store.evict(TILE_CACHE, wanted);
    }
  }

  private setOverviewMode(on: boolean): void {
    if (on === this.overview) return;
    this.overview = on;
    this.renderer.setMode(on ? "overview" : "tiles");
    this.ui.setOverview(on && this.live);
    if (on) this.selected = null; // too small to aim at: no placing from the overview
    this.updatePointer();
    if (on) void this.refreshOverview();
    else if (this.overviewTimer) {
      clearTimeout(this.overviewTimer);
      this.overviewTimer = null;
    }
  }

  private async refreshOverview(): Promise<void> {
    if (this.overviewTimer) clearTimeout(this.overviewTimer);
    this.overviewTimer = null;
    if (!this.overview || this.overviewInFlight) return;
    if (document.hidden) {
      // Nobody is looking: ask again later.
      this.overviewTimer = setTimeout(() => void this.refreshOverview(), OVERVIEW_REFRESH_MS);
      return;
    }
    this.overviewInFlight = true;
    try {
      const headers: HeadersInit = this.overviewEtag ? { "If-None-Match": this.overviewEtag } : {};
      const res = await fetch("/api/v1/canvas", { headers, credentials: "same-origin" });
      if (res.status === 200) {
        const data = new Uint8Array(await res.arrayBuffer());
        this.overviewEtag = res.headers.get("ETag");
        this.renderer.setOverview(data);
        this.minimap.setImage(data);
        this.setWhole(data);
      } else if (res.status !== 304) {
        console.warn(`place: GET /api/v1/canvas: ${res.status}`);
      }
    } catch (e) {
      console.warn("place: overview:", e);
    } finally {
      this.overviewInFlight = false;
      if (this.overview) this.overviewTimer = setTimeout(() => void this.refreshOverview(), OVERVIEW_REFRESH_MS);
    }
  }

  // ---- painting ----

  private tap(sx: number, sy: number, touch: boolean): void {
    if (!this.info) return;
    const px = pixelAt(this.view, this.size, sx, sy, this.info.width, this.info.height);
    if (this.admin.capturesTaps && px) {
      // The admin panel asked "who placed this?" or for a rectangle's corner: not a placement.
      void this.admin.tapAt(px.x, px.y);
      return;
    }
    if (this.timelapse.open) {
      this.ui.toast("Close the timelapse to paint");
      return;
    }
    if (!this.live && this.limitedUntil !== null && this.view.zoom >= TAP_ZOOM) {
      this.ui.toast("Watching only: sign in to play now");
      return;
    }
    if (this.overview) {
      // Too small to aim at: a tap zooms in there instead of painting.
      this.setView(zoomAt(this.view, this.size, sx, sy, Math.max(TAP_ZOOM, this.view.zoom)));
      return;
    }
    if (!px) return;
    if (touch) {
      // A fingertip covers several pixels at a small zoom: zoom in around the tap to aim.
      if (this.view.zoom < AIM_ZOOM) this.setView(zoomAt(this.view, this.size, sx, sy, AIM_ZOOM));
      this.selected = px;
      this.updatePointer();
    } else {
      this.place(px.x, px.y);
    }
  }

  private place(x: number, y: number): void {
    if (!this.info) return;
    if (!this.live || this.banned) {
      this.tick(); // the notice says why
      return;
    }
    const wait = this.nextPlacementAt - Date.now();
    if (wait > 0) {
      this.ui.toast(`Wait ${Math.ceil(wait / 1000)} s for your next pixel`);
      return;
    }
    const requestId = this.placements.newRequestId();
    this.placements.add({ requestId, x, y, color: this.color, sentAt: Date.now(), confirmedAt: null });
    this.refreshPixel(x, y);
    this.cooldownBefore.set(requestId, this.nextPlacementAt);
    this.nextPlacementAt = Date.now() + this.info.cooldownSeconds * 1000;
    this.conn.send(encodePlace(x, y, this.color, requestId));
    this.waited = false;
    this.selected = null;
    this.updatePointer();
    this.tick();
  }

  private restoreCooldown(requestId: number): void {
    const before = this.cooldownBefore.get(requestId);
    this.cooldownBefore.delete(requestId);
    if (before !== undefined) this.nextPlacementAt = before;
  }

  private setNextPlacement(epochMs: number): void {
    // Guard against a server clock far ahead of ours: never wait longer than one cooldown.
    const max = Date.now() + (this.info?.cooldownSeconds ?? 0) * 1000 + 1000;
    this.nextPlacementAt = Math.min(epochMs, max);
  }

  private truthAt(x: number, y: number): number | undefined {
    return this.store.colorAt(x, y);
  }

  private refreshPixel(x: number, y: number): void {
    this.renderer.refreshPixel(x, y, this.truthAt(x, y));
    this.updatePointer();
  }

  // ---- panels ----

  private tick(): void {
    const now = Date.now();
    for (const p of this.placements.expire(now)) this.refreshPixel(p.x, p.y);
    if (this.live && this.info) {
      for (const p of this.placements.dueRetries(now)) {
        this.nextPlacementAt = Math.max(this.nextPlacementAt, now + this.info.cooldownSeconds * 1000);
        this.conn.send(encodePlace(p.x, p.y, p.color, p.requestId));
      }
    }
    const notice = noticeFor({
      live: this.live,
      everLive: this.everLive,
      retryIn: this.conn.retryIn,
      limitedFor: this.limitedUntil === null ? null : Math.max(0, this.limitedUntil - now),
      banned: this.banned,
    });
    this.ui.setNotice(notice);
    const blocked = notice === null ? null : { limited: "Watching", offline: "Offline", banned: "Banned" }[notice.kind];
    this.ui.setCooldown(this.nextPlacementAt - now, blocked);
    this.updateTitle(now, notice === null);
    this.updateConfirm();
  }

  private updateConfirm(): void {
    if (!this.info || !this.selected || this.overview) {
      this.ui.setConfirm(null);
      return;
    }
    this.ui.setConfirm({
      ...this.selected,
      color: this.info.palette[this.color],
      waitMs: this.nextPlacementAt - Date.now(),
    });
  }

  /** Reticle, pointer panel and confirm button follow the pointer, selection and view. */
  private updatePointer(): void {
    if (!this.info) return;
    let px: { x: number; y: number } | null = this.selected;
    if (!px && this.hoverAt) px = pixelAt(this.view, this.size, this.hoverAt.x, this.hoverAt.y, this.info.width, this.info.height);
    if (this.hoverAt) {
      const hovered = this.selected ? pixelAt(this.view, this.size, this.hoverAt.x, this.hoverAt.y, this.info.width, this.info.height) : px;
      this.history.hover(hovered && { ...hovered, sx: this.hoverAt.x, sy: this.hoverAt.y });
    }
    const shownAt = (p: { x: number; y: number }) => {
      const shown = this.renderer.shownIndex(p.x, p.y, this.truthAt(p.x, p.y));
      return shown === undefined ? "transparent" : this.info!.palette[shown];
    };
    if (!px) {
      // Nothing pointed at: the box says where the middle of the view is.
      const c = screenToCanvas(this.view, this.size, this.size.width / 2, this.size.height / 2);
      const centre = { x: Math.min(this.info.width - 1, Math.max(0, Math.floor(c.x))), y: Math.min(this.info.height - 1, Math.max(0, Math.floor(c.y))) };
      this.ui.setPointer({ ...centre, color: shownAt(centre) });
      this.ui.setReticle(null);
    } else {
      this.ui.setPointer({ ...px, color: shownAt(px) });
      const s = canvasToScreen(this.view, this.size, px.x, px.y);
      // The reticle previews the pixel in your colour when a placement could give it that.
      const canPlace = this.live && !this.banned && !this.overview;
      const color = canPlace ? this.info.palette[this.color] : "transparent";
      this.ui.setReticle(!this.overview || this.selected ? { x: s.x, y: s.y, size: this.view.zoom, color } : null);
    }
    this.updateConfirm();
  }

  // ---- templates ----

  /** A fresh whole-canvas image: a template's right pixels it shows overwritten are damage. */
  private setWhole(data: Uint8Array): void {
    // An image fetched before the canvas grew is laid out for the old width.
    if (!this.info || data.length !== this.info.width * this.info.height) return;
    const t = this.templates.template;
    const old = this.whole;
    this.whole = data;
    if (!t || !old || !this.info || old.length !== data.length) return;
    const w = this.info.width;
    for (let ly = 0; ly < t.height; ly++) {
      for (let lx = 0; lx < t.width; lx++) {
        const x = t.x + lx;
        const y = t.y + ly;
        const i = y * w + x;
        // Pixels in held tiles were checked as their changes arrived.
        if (this.store.colorAt(x, y) === undefined && isDamage(t, x, y, old[i], data[i]) && this.placements.colorAt(x, y) === undefined) this.templates.damaged(x, y);
      }
    }
  }

  /** What the template's pixels among these events showed before them, in order. */
  private templateBefores(tx: number, ty: number, events: Uint8Array): { x: number; y: number; before: number | undefined; after: number }[] {
    const t = this.templates.template!;
    const out: { x: number; y: number; before: number | undefined; after: number }[] = [];
    const seen = new Map<number, number>();
    for (let i = 0; i + 2 < events.length; i += 3) {
      const x = tx * TILE_SIZE + events[i];
      const y = ty * TILE_SIZE + events[i + 1];
      if (expectedAt(t, x, y) < 0) continue;
      const k = y * 65536 + x;
      out.push({ x, y, before: seen.has(k) ? seen.get(k) : this.truthFor(x, y), after: events[i + 2] });
      seen.set(k, events[i + 2]);
    }
    return out;
  }

  private checkDamage(changes: { x: number; y: number; before: number | undefined; after: number }[]): void {
    const t = this.templates.template;
    if (!t) return;
    let touched = false;
    for (const c of changes) {
      touched = true;
      // This player's own placement is no damage to report.
      if (this.placements.colorAt(c.x, c.y) === c.after) continue;
      if (isDamage(t, c.x, c.y, c.before, c.after)) this.templates.damaged(c.x, c.y);
    }
    if (touched) this.templates.progressSoon();
  }

  /** The canvas's colour at a pixel as this page knows it: a held tile's, else the last whole image's. */
  private truthFor(x: number, y: number): number | undefined {
    const held = this.store.colorAt(x, y);
    if (held !== undefined || !this.whole || !this.info) return held;
    return this.whole[y * this.info.width + x];
  }

  /** The template's tiles are subscribed too (damage alerts as they happen), when they fit. */
  private addTemplateTiles(wanted: Set<number> | null, max: number): void {
    const t = this.templates.template;
    if (!t || !wanted) return;
    const keys: number[] = [];
    for (let ty = Math.floor(t.y / TILE_SIZE); ty <= Math.floor((t.y + t.height - 1) / TILE_SIZE); ty++) {
      for (let tx = Math.floor(t.x / TILE_SIZE); tx <= Math.floor((t.x + t.width - 1) / TILE_SIZE); tx++) {
        const k = tileKey(tx, ty);
        if (!wanted.has(k)) keys.push(k);
      }
    }
    if (wanted.size + keys.length <= max) for (const k of keys) wanted.add(k);
  }

  private nextWrongPixel(): void {
    const t = this.templates.template;
    if (!t) return;
    const px = nextWrong(t, (x, y) => this.truthFor(x, y), this.view.cx, this.view.cy, this.selected);
    if (!px) {
      this.ui.toast("Every pixel of the template is right");
      return;
    }
    this.goTo(px.x, px.y);
  }

  /** Centres pixel (x, y), zoomed in to aim, selects it and picks the template's colour for it. */
  private goTo(x: number, y: number): void {
    this.setView({ cx: x + 0.5, cy: y + 0.5, zoom: Math.max(this.view.zoom, 16) });
    this.selected = { x, y };
    const t: Template | null = this.templates.template;
    const want = t ? expectedAt(t, x, y) : -1;
    if (want >= 0) this.pickColor(want);
    this.updatePointer();
  }

  // ---- way-finding, hotkeys, title ----

  private pickColor(i: number): void {
    if (!this.info || i < 0 || i >= this.info.palette.length) return;
    this.color = i;
    this.ui.selectColor(i);
    remember("color", colorChoice(i, this.info.palette));
    this.updatePointer();
  }

  private command(c: KeyCommand): void {
    if (c === "help") return this.toggleHelp();
    if (c === "escape") {
      this.toggleHelp(false);
      this.selected = null;
      this.updatePointer();
      return;
    }
    const n = this.info?.palette.length ?? 0;
    if ("color" in c) this.pickColor(c.color);
    else if (n > 0) this.pickColor((this.color + c.colorStep + n) % n);
  }

  private toggleHelp(open?: boolean): void {
    const help = el("help");
    const show = open ?? help.hidden;
    help.hidden = !show;
    el("help-button").setAttribute("aria-expanded", String(show));
  }

  /** The link to the selected pixel (or the view's centre), at this zoom, on the clipboard. */
  private async copyLink(): Promise<void> {
    const c = this.selected ?? { x: Math.floor(this.view.cx), y: Math.floor(this.view.cy) };
    const url = `${location.origin}${location.pathname}${location.search}${formatHash({ cx: c.x + 0.5, cy: c.y + 0.5, zoom: Math.max(this.view.zoom, DEFAULT_ZOOM) })}`;
    try {
      await navigator.clipboard.writeText(url);
      this.ui.toast(`Link to (${c.x}, ${c.y}) copied`);
    } catch {
      this.ui.toast(url, 8000); // no clipboard here: the link to copy by hand
    }
  }

  /** The tab title counts the cooldown down and says when you can place (with a sound if chosen). */
  private updateTitle(now: number, canPlay: boolean): void {
    const wait = this.nextPlacementAt - now;
    let title = TITLE;
    const damage = this.templates.unseenDamage;
    if (damage && document.hidden) {
      title = `Template damaged at (${damage.x}, ${damage.y}) · ${TITLE}`;
    } else if (canPlay && wait > 0) {
      this.waited = true;
      title = `${cooldownText(wait)} · ${TITLE}`;
    } else if (canPlay && this.waited) {
      title = `Ready to place · ${TITLE}`;
      if (document.title !== title && this.sound) chime(READY_TONES);
    }
    if (document.title !== title) document.title = title;
  }

  // ---- debug hook (read-only, for tests and the benchmark) ----

  private visiblePending(): number {
    if (!this.info || this.overview) return 0;
    const r = visibleTiles(this.view, this.size, this.info.width, this.info.height, TILE_SIZE);
    let n = 0;
    for (let ty = r.ty0; ty <= r.ty1; ty++) for (let tx = r.tx0; tx <= r.tx1; tx++) if (!this.store.get(tileKey(tx, ty))) n++;
    return n;
  }

  /** A read-only view of the client's state; each property is computed when read. */
  debug() {
    const app = this;
    return Object.freeze({
      get status() {
        return app.status;
      },
      get mode() {
        return app.overview ? "overview" : "tiles";
      },
      get view() {
        return { ...app.view };
      },
      get info() {
        return app.info;
      },
      get subscribed() {
        return [...app.subs.subscribed].map((k) => [keyTx(k), keyTy(k)]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      },
      get heldTiles() {
        return app.store.size;
      },
      /** Tiles on screen whose snapshot has not arrived (tile mode). */
      get visiblePending() {
        return app.visiblePending();
      },
      get frames() {
        return app.renderer.frames;
      },
      get received() {
        return { ...app.received };
      },
      get nextPlacementIn() {
        return Math.max(0, app.nextPlacementAt - Date.now());
      },
      get selectedColor() {
        return app.color;
      },
      /** Reads the protected regions again now (instead of at the next refresh). */
      refreshRegions() {
        return app.regions.refresh();
      },
      /** The protected regions the page outlines. */
      get regions() {
        return app.regions.all.map((r) => ({ id: r.id, x: r.x, y: r.y, width: r.width, height: r.height, mode: r.mode }));
      },
      /** Pixels whose history the tooltip keeps. */
      get historyCached() {
        return app.history.cached;
      },
      /** Whether the heatmap is laid over the canvas. */
      get heatmap() {
        return app.renderer.heatShown;
      },
      /** The timelapse viewer: the moment shown, and whether it is shown exactly. */
      get timelapse() {
        return { open: app.timelapse.open, at: app.timelapse.at, exactAt: app.timelapse.exactAt, rect: app.timelapse.frameRect };
      },
      /** The template open, its alerts and the server's last count. */
      get template() {
        const t = app.templates.template;
        return { id: t?.id ?? null, shown: app.renderer.templateShown, alerts: app.templates.alerts, counts: app.templates.counts };
      },
      /** The selected pixel (touch flow, next wrong pixel, go there). */
      get selectedPixel() {
        return app.selected;
      },
      /** Pixels outlined by the admin panel. */
      get highlighted() {
        return app.renderer.highlightCount;
      },
      /** The rectangle the admin panel framed, if any. */
      get selection() {
        return app.renderer.selected;
      },
      heldSeq: (tx: number, ty: number) => app.store.get(tileKey(tx, ty))?.seq,
      /** Placements refused for now (UNAVAILABLE with retryAfter), shown and waiting to be sent again. */
      get pendingPlacements() {
        return app.placements.pending;
      },
      colorAt: (x: number, y: number) => app.renderer.shownIndex(x, y, app.truthAt(x, y)),
      /** CSS px of the centre of a canvas pixel. */
      screenOf: (x: number, y: number) => canvasToScreen(app.view, app.size, x + 0.5, y + 0.5),
      /** Drops the WebSocket as a network blip would; it comes back after `offlineMs` or more. */
      dropConnection: (offlineMs = 0) => app.conn.drop(offlineMs),
      setView: (x: number, y: number, zoom: number) => app.setView({ cx: x + 0.5, cy: y + 0.5, zoom }),
      onFrame: (f: ((ms: number) => void) | null) => (app.renderer.onFrame = f),
    });
  }
}

function exposeDebugHook(app: App): void {
  Object.defineProperty(window, "__place", { value: app.debug(), writable: false, configurable: false });
}

function wsUrl(): string {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
}
