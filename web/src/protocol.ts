// The binary codec of the place protocol (docs/PROTOCOL.md, "Messages (binary)").
// Pure: no sockets, no DOM. Every decoder treats its input as hostile and
// throws ProtocolError on a short, long or unknown frame.

import { inflateSync } from "fflate";

/** Bytes of one tile on the wire: 64*64 palette indices, row-major. */
export const TILE_SIZE = 64;
export const TILE_BYTES = TILE_SIZE * TILE_SIZE;

/** Message types: the first byte of every frame. */
export const Op = {
  Subscribe: 0x01,
  Unsubscribe: 0x02,
  Place: 0x03,
  Ping: 0x04,
  Welcome: 0x81,
  Tile: 0x82,
  Pixels: 0x83,
  Success: 0x84,
  Error: 0x85,
  Pong: 0x86,
  Cooldown: 0x87,
  Canvas: 0x88,
} as const;

/** Error codes, by their binary value. */
export const ERROR_CODES: Record<number, string> = {
  1: "RATE_LIMITED",
  2: "INVALID_COORDS",
  3: "INVALID_COLOR",
  4: "UNAUTHORIZED",
  5: "BANNED",
  6: "BAD_REQUEST",
  7: "TOO_MANY_TILES",
  8: "UNAVAILABLE",
  9: "REGION_LOCKED",
  10: "REGION_REGISTERED_ONLY",
};

export interface CanvasInfo {
  width: number;
  height: number;
  tileSize: number;
  colorCount: number;
  palette: string[];
  cooldownSeconds: number;
  maxSubscribedTiles: number;
}

export interface Welcome {
  type: "welcome";
  userId: string;
  cooldown: number;
  cooldownRemaining: number;
  canvasInfo: CanvasInfo;
}

export interface TileMsg {
  type: "tile";
  tx: number;
  ty: number;
  seq: number;
  /** 4096 palette indices, row-major, padded. */
  data: Uint8Array;
}

export interface PixelsMsg {
  type: "pixels";
  tx: number;
  ty: number;
  firstSeq: number;
  /** `count` events of 3 bytes: lx, ly, color. A view into the frame. */
  events: Uint8Array;
}

export interface SuccessMsg {
  type: "success";
  requestId: number;
  nextPlacement: number;
}

export interface ErrorMsg {
  type: "error";
  code: string;
  /** Present when the failing request carried one. */
  requestId?: number;
  /** Milliseconds; present only for a cooldown RATE_LIMITED. */
  cooldownRemaining?: number;
  /**
   * Milliseconds; present only for an UNAVAILABLE placement that was not placed: the same
   * placement may be sent again after this long. Absent, it may have been placed: never resend.
   */
  retryAfter?: number;
  message: string;
}

export interface PongMsg {
  type: "pong";
}

/** An administrator changed the cooldown; `cooldownRemaining` is this user's new wait (ms). */
export interface CooldownMsg {
  type: "cooldown";
  /** Seconds. */
  cooldown: number;
  cooldownRemaining: number;
}

/** An administrator grew the canvas: its new size. Nothing placed moved; the new area is empty. */
export interface CanvasMsg {
  type: "canvas";
  width: number;
  height: number;
}

export type ServerMsg =
  | Welcome
  | TileMsg
  | PixelsMsg
  | SuccessMsg
  | ErrorMsg
  | PongMsg
  | CooldownMsg
  | CanvasMsg;

/** One entry of a subscribe frame; `seq` set means "I hold this tile at seq". */
export interface SubscribeEntry {
  tx: number;
  ty: number;
  seq?: number;
}

export class ProtocolError extends Error {}

// ---- client to server ----

export function encodeSubscribe(entries: readonly SubscribeEntry[]): Uint8Array {
  const buf = new Uint8Array(3 + 13 * entries.length);
  const v = new DataView(buf.buffer);
  v.setUint8(0, Op.Subscribe);
  v.setUint16(1, entries.length, true);
  let o = 3;
  for (const e of entries) {
    v.setUint16(o, e.tx, true);
    v.setUint16(o + 2, e.ty, true);
    const held = e.seq !== undefined;
    v.setUint8(o + 4, held ? 1 : 0);
    v.setBigUint64(o + 5, BigInt(held ? e.seq! : 0), true);
    o += 13;
  }
  return buf;
}

export function encodeUnsubscribe(tiles: readonly { tx: number; ty: number }[]): Uint8Array {
  const buf = new Uint8Array(3 + 4 * tiles.length);
  const v = new DataView(buf.buffer);
  v.setUint8(0, Op.Unsubscribe);
  v.setUint16(1, tiles.length, true);
  let o = 3;
  for (const t of tiles) {
    v.setUint16(o, t.tx, true);
    v.setUint16(o + 2, t.ty, true);
    o += 4;
  }
  return buf;
}

export function encodePlace(x: number, y: number, color: number, requestId: number): Uint8Array {
  const buf = new Uint8Array(10);
  const v = new DataView(buf.buffer);
  v.setUint8(0, Op.Place);
  v.setUint16(1, x, true);
  v.setUint16(3, y, true);
  v.setUint8(5, color);
  v.setUint32(6, requestId >>> 0, true);
  return buf;
}

export function encodePing(): Uint8Array {
  return Uint8Array.of(Op.Ping);
}

// ---- server to client ----

function need(v: DataView, len: number, exact: boolean): void {
  if (v.byteLength < len || (exact && v.byteLength !== len)) {
    throw new ProtocolError(`frame of ${v.byteLength} bytes, expected ${exact ? "" : "at least "}${len}`);
  }
}

/** Reads a u64 as a JS number (seqs and epoch ms stay far below 2^53). */
function u64(v: DataView, o: number): number {
  return v.getUint32(o, true) + v.getUint32(o + 4, true) * 0x1_0000_0000;
}

export function decodeServer(frame: ArrayBuffer | Uint8Array): ServerMsg {
  const bytes = frame instanceof Uint8Array ? frame : new Uint8Array(frame);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  need(v, 1, false);
  switch (v.getUint8(0)) {
    case Op.Welcome:
      return decodeWelcome(bytes.subarray(1));
    case Op.Tile:
      return decodeTile(v, bytes);
    case Op.Pixels: {
      need(v, 15, false);
      const count = v.getUint16(13, true);
      need(v, 15 + 3 * count, true);
      return {
        type: "pixels",
        tx: v.getUint16(1, true),
        ty: v.getUint16(3, true),
        firstSeq: u64(v, 5),
        events: bytes.subarray(15, 15 + 3 * count),
      };
    }
    case Op.Success:
      need(v, 13, true);
      return { type: "success", requestId: v.getUint32(1, true), nextPlacement: u64(v, 5) };
    case Op.Error:
      return decodeError(v, bytes);
    case Op.Pong:
      need(v, 1, true);
      return { type: "pong" };
    case Op.Cooldown:
      need(v, 13, true);
      return { type: "cooldown", cooldown: v.getUint32(1, true), cooldownRemaining: u64(v, 5) };
    case Op.Canvas: {
      need(v, 9, true);
      const width = v.getUint32(1, true);
      const height = v.getUint32(5, true);
      if (width < 1 || height < 1 || width > 65536 || height > 65536) {
        throw new ProtocolError(`canvas size ${width}x${height} is out of range`);
      }
      return { type: "canvas", width, height };
    }
    default:
      throw new ProtocolError(`unknown message type 0x${v.getUint8(0).toString(16)}`);
  }
}

function decodeWelcome(json: Uint8Array): Welcome {
  let obj: unknown;
  try {
    obj = JSON.parse(new TextDecoder().decode(json));
  } catch {
    throw new ProtocolError("welcome is not JSON");
  }
  const w = obj as Welcome;
  const ci = w?.canvasInfo;
  if (
    !ci ||
    !Number.isInteger(ci.width) ||
    !Number.isInteger(ci.height) ||
    ci.width <= 0 ||
    ci.height <= 0 ||
    !Array.isArray(ci.palette) ||
    ci.palette.length === 0 ||
    ci.palette.length > 256
  ) {
    throw new ProtocolError("welcome without a valid canvasInfo");
  }
  return {
    type: "welcome",
    userId: String(w.userId),
    cooldown: Number(w.cooldown) || 0,
    cooldownRemaining: Number(w.cooldownRemaining) || 0,
    canvasInfo: {
      width: ci.width,
      height: ci.height,
      tileSize: ci.tileSize ?? TILE_SIZE,
      colorCount: ci.colorCount ?? ci.palette.length,
      palette: ci.palette.map(String),
      cooldownSeconds: Number(ci.cooldownSeconds) || 0,
      maxSubscribedTiles: Number(ci.maxSubscribedTiles) || 256,
    },
  };
}

function decodeTile(v: DataView, bytes: Uint8Array): TileMsg {
  need(v, 14, false);
  const encoding = v.getUint8(13);
  const body = bytes.subarray(14);
  let data: Uint8Array;
  if (encoding === 0) {
    need(v, 14 + TILE_BYTES, true);
    data = body.slice();
  } else if (encoding === 1) {
    try {
      data = inflateSync(body, { out: new Uint8Array(TILE_BYTES) });
    } catch {
      throw new ProtocolError("tile data does not inflate");
    }
    if (data.length !== TILE_BYTES) throw new ProtocolError(`tile inflates to ${data.length} bytes`);
  } else {
    throw new ProtocolError(`unknown tile encoding ${encoding}`);
  }
  return { type: "tile", tx: v.getUint16(1, true), ty: v.getUint16(3, true), seq: u64(v, 5), data };
}

function decodeError(v: DataView, bytes: Uint8Array): ErrorMsg {
  need(v, 13, false);
  const code = v.getUint8(1);
  const flags = v.getUint8(2);
  const len = v.getUint16(11, true);
  need(v, 13 + len + (flags & 4 ? 4 : 0), true);
  const msg: ErrorMsg = {
    type: "error",
    code: ERROR_CODES[code] ?? `UNKNOWN_${code}`,
    message: new TextDecoder().decode(bytes.subarray(13, 13 + len)),
  };
  if (flags & 1) msg.requestId = v.getUint32(3, true);
  if (flags & 2) msg.cooldownRemaining = v.getUint32(7, true);
  if (flags & 4) msg.retryAfter = v.getUint32(13 + len, true);
  return msg;
}
