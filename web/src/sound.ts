// Short sounds made with Web Audio (no files to fetch): the cooldown is over,
// a template pixel was damaged. A browser lets a page play sound only after
// the player interacted with it, so the context is made on first use and a
// failure is silent.

let ctx: AudioContext | null = null;

/** Plays tones one after the other: [frequency Hz, duration ms] each. */
export function chime(tones: readonly [number, number][]): void {
  try {
    ctx ??= new AudioContext();
    let t = ctx.currentTime;
    for (const [freq, ms] of tones) {
      const osc = ctx.createOscillator();
      const gain = ctx.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, t);
      gain.gain.exponentialRampToValueAtTime(0.2, t + 0.01);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + ms / 1000);
      osc.connect(gain).connect(ctx.destination);
      osc.start(t);
      osc.stop(t + ms / 1000);
      t += ms / 1000;
    }
  } catch {
    /* no audio here: the title says it too */
  }
}

/** Two rising notes: you can place again. */
export const READY_TONES: readonly [number, number][] = [
  [660, 120],
  [880, 160],
];
/** Two falling notes: a template pixel was overwritten. */
export const DAMAGE_TONES: readonly [number, number][] = [
  [520, 140],
  [390, 220],
];
