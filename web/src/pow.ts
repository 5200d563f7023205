// The proof of work a new guest pays (docs/PROTOCOL.md, "Guests"): find a nonce such that
// SHA-256 of `challenge:nonce` starts with `difficulty` zero bits. The search runs in a Web
// Worker (src/pow-worker.ts), so the page stays responsive while it works: at the server's
// default 16 bits, 65,536 hashes on average, about 0.4 s at the 0.16 M hashes/s measured in Node
// on the project's test machine, a second or two on a phone.

import { sha256 } from "@noble/hashes/sha2.js";

/** Leading zero bits of a hash. */
export function leadingZeroBits(hash: Uint8Array): number {
  let bits = 0;
  for (const byte of hash) {
    if (byte === 0) {
      bits += 8;
      continue;
    }
    return bits + Math.clz32(byte) - 24;
  }
  return bits;
}

/** Whether `nonce` solves `challenge` at `difficulty` bits. */
export function solves(challenge: string, nonce: number, difficulty: number): boolean {
  const bytes = new TextEncoder().encode(`${challenge}:${nonce}`);
  return leadingZeroBits(sha256(bytes)) >= difficulty;
}

/** Searches nonces from 0 until one solves the challenge (the worker's loop). */
export function solve(challenge: string, difficulty: number): string {
  const encoder = new TextEncoder();
  const prefix = encoder.encode(`${challenge}:`);
  const buffer = new Uint8Array(prefix.length + 20);
  buffer.set(prefix);
  for (let nonce = 0; ; nonce++) {
    const digits = encoder.encode(String(nonce));
    buffer.set(digits, prefix.length);
    const hash = sha256(buffer.subarray(0, prefix.length + digits.length));
    if (leadingZeroBits(hash) >= difficulty) return String(nonce);
  }
}

/** Solves in a worker where the browser has them, else here. */
export function solveInBackground(challenge: string, difficulty: number): Promise<string> {
  if (difficulty === 0) return Promise.resolve("0");
  if (typeof Worker === "undefined") return Promise.resolve(solve(challenge, difficulty));
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL("./pow-worker.ts", import.meta.url), { type: "module" });
    worker.onmessage = (e: MessageEvent<string>) => {
      worker.terminate();
      resolve(e.data);
    };
    worker.onerror = (e) => {
      worker.terminate();
      reject(new Error(`proof of work: ${e.message}`));
    };
    worker.postMessage({ challenge, difficulty });
  });
}

/** A challenge as `GET /api/v1/auth/challenge` answers it. */
interface Challenge {
  challenge: string;
  difficulty: number;
}

/** The body `POST /api/v1/auth/guest` takes: a challenge and its solution. */
export async function guestProof(): Promise<{ challenge: string; nonce: string }> {
  const res = await fetch("/api/v1/auth/challenge", { credentials: "same-origin" });
  if (!res.ok) throw new Error(`GET /api/v1/auth/challenge: ${res.status}`);
  const { challenge, difficulty } = (await res.json()) as Challenge;
  return { challenge, nonce: await solveInBackground(challenge, difficulty) };
}
