import { deflateSync } from "fflate";
import { describe, expect, it } from "vitest";
import {
  decodeServer,
  encodePing,
  encodePlace,
  encodeSubscribe,
  encodeUnsubscribe,
  ProtocolError,
  TILE_BYTES,
} from "../../src/protocol";

/** "01 02 00 ..." to bytes. */
function hex(s: string): Uint8Array {
  return Uint8Array.from(s.trim().split(/\s+/).map((b) => parseInt(b, 16)));
}

describe("client frames (the byte examples of PROTOCOL.md)", () => {
  it("subscribe: tile (3,4) without seq, tile (3,5) holding seq 17", () => {
    const bytes = encodeSubscribe([
      { tx: 3, ty: 4 },
      { tx: 3, ty: 5, seq: 17 },
    ]);
    expect(bytes).toEqual(hex("01 02 00  03 00 04 00 00 00 00 00 00 00 00 00 00   03 00 05 00 01 11 00 00 00 00 00 00 00"));
  });

  it("subscribe: seq 0 held still sets the flag", () => {
    expect(encodeSubscribe([{ tx: 1, ty: 2, seq: 0 }])).toEqual(hex("01 01 00 01 00 02 00 01 00 00 00 00 00 00 00 00"));
  });

  it("subscribe: large seqs are little-endian u64", () => {
    const b = encodeSubscribe([{ tx: 0, ty: 0, seq: 2 ** 40 + 5 }]);
    expect([...b.subarray(8)]).toEqual([5, 0, 0, 0, 0, 1, 0, 0]);
  });

  it("place (200,310) colour 5, requestId 1", () => {
    expect(encodePlace(200, 310, 5, 1)).toEqual(hex("03 c8 00 36 01 05 01 00 00 00"));
  });

  it("unsubscribe and ping", () => {
    expect(encodeUnsubscribe([{ tx: 3, ty: 4 }])).toEqual(hex("02 01 00 03 00 04 00"));
    expect(encodePing()).toEqual(hex("04"));
  });
});

describe("server frames", () => {
  it("pixels: tile (3,4), first seq 18, one event (200,310) colour 5", () => {
    const m = decodeServer(hex("83 03 00 04 00 12 00 00 00 00 00 00 00 01 00 08 36 05"));
    expect(m.type).toBe("pixels");
    if (m.type !== "pixels") return;
    expect(m.tx).toBe(3);
    expect(m.ty).toBe(4);
    expect(m.firstSeq).toBe(18);
    expect([...m.events]).toEqual([8, 0x36, 5]);
    expect(3 * 64 + m.events[0]).toBe(200);
    expect(4 * 64 + m.events[1]).toBe(310);
  });

  it("pixels with count 0 (up to date)", () => {
    const m = decodeServer(hex("83 01 00 02 00 08 00 00 00 00 00 00 00 00 00"));
    expect(m).toMatchObject({ type: "pixels", tx: 1, ty: 2, firstSeq: 8 });
  });

  it("pixels: short or long frames are invalid", () => {
    expect(() => decodeServer(hex("83 03 00 04 00 12 00 00 00 00 00 00 00 01 00 08 36"))).toThrow(ProtocolError);
    expect(() => decodeServer(hex("83 03 00 04 00 12 00 00 00 00 00 00 00 01 00 08 36 05 00"))).toThrow(ProtocolError);
    expect(() => decodeServer(hex("83 03 00"))).toThrow(ProtocolError);
  });

  it("welcome carries JSON", () => {
    const json = JSON.stringify({
      type: "welcome",
      userId: "17",
      cooldown: 5,
      cooldownRemaining: 1200,
      canvasInfo: { width: 2000, height: 2000, tileSize: 64, colorCount: 2, palette: ["#ffffff", "#000000"], cooldownSeconds: 5, maxSubscribedTiles: 256 },
    });
    const frame = new Uint8Array([0x81, ...new TextEncoder().encode(json)]);
    const m = decodeServer(frame);
    expect(m).toMatchObject({ type: "welcome", userId: "17", cooldownRemaining: 1200 });
    if (m.type === "welcome") expect(m.canvasInfo.maxSubscribedTiles).toBe(256);
  });

  it("welcome without canvasInfo is invalid", () => {
    expect(() => decodeServer(new Uint8Array([0x81, ...new TextEncoder().encode("{}")]))).toThrow(ProtocolError);
    expect(() => decodeServer(hex("81 7b"))).toThrow(ProtocolError);
  });

  it("tile, raw encoding", () => {
    const data = new Uint8Array(TILE_BYTES).map((_, i) => i % 16);
    const head = hex("82 03 00 04 00 11 00 00 00 00 00 00 00 00");
    const m = decodeServer(new Uint8Array([...head, ...data]));
    expect(m).toMatchObject({ type: "tile", tx: 3, ty: 4, seq: 17 });
    if (m.type === "tile") expect(m.data).toEqual(data);
  });

  it("tile, raw DEFLATE encoding", () => {
    const data = new Uint8Array(TILE_BYTES);
    data[100] = 7;
    const head = hex("82 01 00 02 00 05 00 00 00 00 00 00 00 01");
    const m = decodeServer(new Uint8Array([...head, ...deflateSync(data)]));
    expect(m).toMatchObject({ type: "tile", tx: 1, ty: 2, seq: 5 });
    if (m.type === "tile") expect(m.data).toEqual(data);
  });

  it("tile: wrong length, bad DEFLATE or unknown encoding is invalid", () => {
    const head = [0x82, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    expect(() => decodeServer(new Uint8Array([...head, 0, ...new Uint8Array(4095)]))).toThrow(ProtocolError);
    expect(() => decodeServer(new Uint8Array([...head, 1, 0xff, 0xff, 0xff]))).toThrow(ProtocolError);
    expect(() => decodeServer(new Uint8Array([...head, 1, ...deflateSync(new Uint8Array(100))]))).toThrow(ProtocolError);
    expect(() => decodeServer(new Uint8Array([...head, 2]))).toThrow(ProtocolError);
  });

  it("success: requestId and nextPlacement (epoch ms)", () => {
    const m = decodeServer(hex("84 01 00 00 00 27 6a 8f b7 9a 01 00 00"));
    expect(m).toEqual({ type: "success", requestId: 1, nextPlacement: 0x019ab78f6a27 });
  });

  it("error with requestId and cooldownRemaining", () => {
    const text = new TextEncoder().encode("cooldown: 4.2 s left");
    const m = decodeServer(new Uint8Array([...hex("85 01 03 01 00 00 00 68 10 00 00"), text.length, 0, ...text]));
    expect(m).toEqual({ type: "error", code: "RATE_LIMITED", requestId: 1, cooldownRemaining: 4200, message: "cooldown: 4.2 s left" });
  });

  it("error with retryAfter: UNAVAILABLE, nothing placed", () => {
    // The same bytes the Rust codec writes (binary.rs: UNAVAILABLE answering request 7, retry after 1 s).
    const m = decodeServer(hex("85 08 05 07 00 00 00 00 00 00 00 02 00 6e 6f e8 03 00 00"));
    expect(m).toEqual({ type: "error", code: "UNAVAILABLE", requestId: 7, retryAfter: 1000, message: "no" });
    expect(() => decodeServer(hex("85 08 05 07 00 00 00 00 00 00 00 02 00 6e 6f e8 03 00"))).toThrow(ProtocolError);
  });

  it("error without optional fields", () => {
    const m = decodeServer(hex("85 07 00 00 00 00 00 00 00 00 00 00 00"));
    expect(m).toEqual({ type: "error", code: "TOO_MANY_TILES", message: "" });
  });

  it("error: message length beyond the frame is invalid", () => {
    expect(() => decodeServer(hex("85 07 00 00 00 00 00 00 00 00 00 05 00 41"))).toThrow(ProtocolError);
  });

  it("cooldown: seconds and this user's new wait", () => {
    // The same bytes the Rust codec writes for Cooldown { cooldown: 2, cooldown_remaining: 1400 }.
    expect(decodeServer(hex("87 02 00 00 00 78 05 00 00 00 00 00 00"))).toEqual({
      type: "cooldown",
      cooldown: 2,
      cooldownRemaining: 1400,
    });
    expect(() => decodeServer(hex("87 02 00 00 00"))).toThrow(ProtocolError);
  });

  it("canvas: the grown size", () => {
    // The same bytes the Rust codec writes for Canvas { width: 4096, height: 2000 }.
    expect(decodeServer(hex("88 00 10 00 00 d0 07 00 00"))).toEqual({ type: "canvas", width: 4096, height: 2000 });
    expect(() => decodeServer(hex("88 00 10 00 00"))).toThrow(ProtocolError);
    expect(() => decodeServer(hex("88 00 00 00 00 d0 07 00 00"))).toThrow(ProtocolError);
    expect(() => decodeServer(hex("88 01 00 01 00 d0 07 00 00"))).toThrow(ProtocolError);
  });

  it("pong; unknown types and empty frames are invalid", () => {
    expect(decodeServer(hex("86"))).toEqual({ type: "pong" });
    expect(() => decodeServer(hex("86 00"))).toThrow(ProtocolError);
    expect(() => decodeServer(hex("99"))).toThrow(ProtocolError);
    expect(() => decodeServer(new Uint8Array(0))).toThrow(ProtocolError);
  });
});

describe("hostile input", () => {
  it("random frames decode or throw ProtocolError, nothing else", () => {
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const types = [0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x00, 0xff];
    for (let i = 0; i < 20_000; i++) {
      const len = Math.floor(rand() * 64);
      const frame = new Uint8Array(1 + len).map(() => Math.floor(rand() * 256));
      frame[0] = types[i % types.length];
      try {
        decodeServer(frame);
      } catch (e) {
        expect(e).toBeInstanceOf(ProtocolError);
      }
    }
  });

  it("a truncated valid pixels frame of any length is rejected", () => {
    const ok = hex("83 03 00 04 00 12 00 00 00 00 00 00 00 02 00 08 36 05 01 02 03");
    expect(decodeServer(ok).type).toBe("pixels");
    for (let n = 0; n < ok.length; n++) expect(() => decodeServer(ok.subarray(0, n))).toThrow(ProtocolError);
  });
});
