import { describe, expect, it } from "vitest";
import { jobText, snapshotAt, span, timeAt, SLIDER_STEPS, type SnapshotInfo } from "../../src/timelapse";

const snap = (id: number, coversUntil: number): SnapshotInfo => ({ id, coversUntil, takenAt: coversUntil + 5, events: id, url: `/s/${id}` });

describe("timelapse", () => {
  it("picks the latest snapshot covering the moment, never a later one", () => {
    const list = [snap(1, 100), snap(2, 200), snap(3, 300)];
    expect(snapshotAt(list, 50)).toBeNull();
    expect(snapshotAt(list, 100)?.id).toBe(1);
    expect(snapshotAt(list, 299)?.id).toBe(2);
    expect(snapshotAt(list, 1000)?.id).toBe(3);
  });

  it("maps the slider over the log's span", () => {
    const s = span({ snapshots: [], firstEventAt: 1000, lastEventAt: 3000, now: 9000 });
    expect(s).toEqual([1000, 3000]);
    expect(timeAt(s, 0)).toBe(1000);
    expect(timeAt(s, SLIDER_STEPS / 2)).toBe(2000);
    expect(timeAt(s, SLIDER_STEPS)).toBe(3000);
    expect(span({ snapshots: [], firstEventAt: null, lastEventAt: null, now: 9000 })).toEqual([9000, 9000]);
  });

  it("says where a job is", () => {
    const job = { jobId: "a", framesDone: 3, framesTotal: 60, error: null, downloadUrl: null };
    expect(jobText({ ...job, status: "running" })).toBe("Rendering 3/60 frames…");
    expect(jobText({ ...job, status: "failed", error: "boom" })).toBe("Failed: boom");
  });
});
