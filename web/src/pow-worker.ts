// The proof-of-work search off the page's thread (see src/pow.ts).

import { solve } from "./pow";

self.onmessage = (e: MessageEvent<{ challenge: string; difficulty: number }>) => {
  self.postMessage(solve(e.data.challenge, e.data.difficulty));
};
