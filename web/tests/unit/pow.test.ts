import { describe, expect, it } from "vitest";
import { sha256 } from "@noble/hashes/sha2.js";
import { leadingZeroBits, solve, solves } from "../../src/pow";

describe("proof of work", () => {
  it("hashes the bytes the server hashes", () => {
    // printf 'test:0' | sha256sum, and the server's known vector (crates/protocol/src/pow.rs).
    const hex = Array.from(sha256(new TextEncoder().encode("test:0")), (b) => b.toString(16).padStart(2, "0")).join("");
    expect(hex).toBe("d13a029069efc84c2f99c169af8f2d1dfb9eb6fc39be52929911ad2e242667c5");
  });

  it("counts leading zero bits", () => {
    expect(leadingZeroBits(Uint8Array.from([0b0001_0000, 0xff]))).toBe(3);
    expect(leadingZeroBits(Uint8Array.from([0, 0b0100_0000]))).toBe(9);
    expect(leadingZeroBits(Uint8Array.from([0xff]))).toBe(0);
  });

  it("finds a nonce that solves its challenge and not another's", () => {
    const nonce = solve("abc", 12);
    expect(solves("abc", Number(nonce), 12)).toBe(true);
    // An earlier nonce would have been found first.
    for (let n = 0; n < Number(nonce); n++) expect(solves("abc", n, 12)).toBe(false);
  });
});
