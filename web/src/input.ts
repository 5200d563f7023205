// Pointer, wheel and keyboard gestures on the canvas, turned into pan, zoom,
// hover, tap and long-press callbacks. A press becomes a tap only if the
// pointer moved less than a few px and no second finger came down: dragging
// never paints. A finger that rests still for LONG_PRESS_MS is a long press
// (show the pixel's history), and its release is no tap.

export interface GestureHandlers {
  pan(dx: number, dy: number): void;
  zoomAt(sx: number, sy: number, factor: number): void;
  hover(sx: number, sy: number): void;
  leave(): void;
  tap(sx: number, sy: number, touch: boolean): void;
  longPress(sx: number, sy: number): void;
  /** A hotkey other than panning and zooming. */
  command(c: KeyCommand): void;
}

/** What a hotkey asks for, besides panning and zooming. */
export type KeyCommand = { color: number } | { colorStep: 1 | -1 } | "help" | "escape";

/** The command of a key press (digits pick colours: 1..9, 0 = 10; Shift adds 10), or null. */
export function keyCommand(e: { key: string; code: string; shiftKey: boolean }): KeyCommand | null {
  const digit = /^Digit([0-9])$/.exec(e.code);
  if (digit) {
    const n = Number(digit[1]);
    return { color: (n === 0 ? 9 : n - 1) + (e.shiftKey ? 10 : 0) };
  }
  switch (e.key) {
    case "[":
      return { colorStep: -1 };
    case "]":
      return { colorStep: 1 };
    case "?":
      return "help";
    case "Escape":
      return "escape";
    default:
      return null;
  }
}

/** How far (CSS px) a press may wander and still be a tap: a shaky drag of a few px never places. */
export const TAP_SLOP_MOUSE = 2;
export const TAP_SLOP_TOUCH = 10;
/** How long a finger rests still before a press is a long press. */
export const LONG_PRESS_MS = 500;
const KEY_PAN_PX = 60;
const KEY_ZOOM = 1.5;

/** Wheel delta to zoom factor; a pinch on a trackpad comes as ctrl+wheel with small deltas. */
export function wheelFactor(deltaY: number, deltaMode: number, ctrlKey: boolean): number {
  const px = deltaMode === 1 ? deltaY * 16 : deltaMode === 2 ? deltaY * 400 : deltaY;
  const k = ctrlKey ? 0.01 : 0.002;
  return Math.exp(-Math.max(-300, Math.min(300, px)) * k);
}

interface Pointer {
  x: number;
  y: number;
  startX: number;
  startY: number;
}

export function attachGestures(el: HTMLElement, h: GestureHandlers): void {
  const pointers = new Map<number, Pointer>();
  let moved = false; // the current press became a drag or pinch
  let pinch: { dist: number; mx: number; my: number } | null = null;
  let longTimer: ReturnType<typeof setTimeout> | null = null;
  let longPressed = false; // the current press became a long press
  const cancelLong = () => {
    if (longTimer) clearTimeout(longTimer);
    longTimer = null;
  };

  const pinchState = () => {
    const [a, b] = [...pointers.values()];
    return { dist: Math.hypot(a.x - b.x, a.y - b.y) || 1, mx: (a.x + b.x) / 2, my: (a.y + b.y) / 2 };
  };

  el.addEventListener("pointerdown", (e) => {
    if (e.pointerType === "mouse" && e.button !== 0) return;
    el.setPointerCapture(e.pointerId);
    pointers.set(e.pointerId, { x: e.clientX, y: e.clientY, startX: e.clientX, startY: e.clientY });
    if (pointers.size === 1) {
      moved = false;
      longPressed = false;
      if (e.pointerType !== "mouse") {
        const id = e.pointerId;
        longTimer = setTimeout(() => {
          longTimer = null;
          const p = pointers.get(id);
          if (!p || moved || pointers.size !== 1) return;
          longPressed = true;
          h.longPress(p.x, p.y);
        }, LONG_PRESS_MS);
      }
    }
    if (pointers.size === 2) {
      cancelLong();
      moved = true;
      pinch = pinchState();
    }
  });

  el.addEventListener("pointermove", (e) => {
    const p = pointers.get(e.pointerId);
    if (!p) {
      if (e.pointerType === "mouse") h.hover(e.clientX, e.clientY);
      return;
    }
    const dx = e.clientX - p.x;
    const dy = e.clientY - p.y;
    p.x = e.clientX;
    p.y = e.clientY;
    if (pointers.size >= 2 && pinch) {
      const next = pinchState();
      h.zoomAt(pinch.mx, pinch.my, next.dist / pinch.dist);
      h.pan(next.mx - pinch.mx, next.my - pinch.my);
      pinch = next;
      return;
    }
    const slop = e.pointerType === "mouse" ? TAP_SLOP_MOUSE : TAP_SLOP_TOUCH;
    if (!moved && Math.hypot(p.x - p.startX, p.y - p.startY) >= slop) {
      moved = true;
      cancelLong();
      el.classList.add("dragging");
      h.pan(p.x - p.startX, p.y - p.startY); // catch up with the slop
    } else if (moved) {
      h.pan(dx, dy);
    }
    if (e.pointerType === "mouse") h.hover(e.clientX, e.clientY);
  });

  const end = (e: PointerEvent, cancelled: boolean) => {
    const p = pointers.get(e.pointerId);
    if (!p) return;
    pointers.delete(e.pointerId);
    cancelLong();
    if (pointers.size === 0) el.classList.remove("dragging");
    if (pointers.size === 1) {
      // One finger left after a pinch: it pans from where it is now, never taps.
      pinch = null;
    }
    if (pointers.size === 0 && !moved && !longPressed && !cancelled) h.tap(e.clientX, e.clientY, e.pointerType !== "mouse");
  };
  el.addEventListener("pointerup", (e) => end(e, false));
  el.addEventListener("pointercancel", (e) => end(e, true));
  el.addEventListener("pointerleave", (e) => {
    if (e.pointerType === "mouse" && !pointers.has(e.pointerId)) h.leave();
  });

  el.addEventListener(
    "wheel",
    (e) => {
      e.preventDefault();
      h.zoomAt(e.clientX, e.clientY, wheelFactor(e.deltaY, e.deltaMode, e.ctrlKey));
    },
    { passive: false },
  );
  // A long press would also open the browser's menu for the canvas.
  el.addEventListener("contextmenu", (e) => {
    if (longTimer || longPressed) e.preventDefault();
  });
  // Safari's own pinch gesture would zoom the page.
  el.addEventListener("gesturestart", (e) => e.preventDefault());

  window.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement || e.metaKey || e.ctrlKey || e.altKey) return;
    if (document.querySelector("dialog[open]")) return;
    const step = e.shiftKey ? KEY_PAN_PX * 4 : KEY_PAN_PX;
    const cx = window.innerWidth / 2;
    const cy = window.innerHeight / 2;
    switch (e.key) {
      case "ArrowLeft":
        h.pan(step, 0);
        break;
      case "ArrowRight":
        h.pan(-step, 0);
        break;
      case "ArrowUp":
        h.pan(0, step);
        break;
      case "ArrowDown":
        h.pan(0, -step);
        break;
      case "+":
      case "=":
        h.zoomAt(cx, cy, KEY_ZOOM);
        break;
      case "-":
      case "_":
        h.zoomAt(cx, cy, 1 / KEY_ZOOM);
        break;
      default: {
        const c = keyCommand(e);
        if (!c) return;
        h.command(c);
      }
    }
    e.preventDefault();
  });
}
