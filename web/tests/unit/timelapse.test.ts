import { describe, expect, it } from "vitest";
import { covers, jobText, renderRequest, RENDER_FRAMES_MAX, RENDER_FRAMES_MIN, snapshotAt, span, timeAt, viewRect, SLIDER_STEPS, type SnapshotInfo } from "../../src/timelapse";

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

describe("the view's timelapse", () => {
  const screen = { width: 800, height: 400 };
  const canvas = { width: 1000, height: 1000 };

  it("fetches the view's rectangle, widened by a margin, on the canvas", () => {
    expect(viewRect(500, 500, 4, screen, canvas)).toEqual({ x: 400, y: 450, width: 200, height: 100 });
    expect(viewRect(500, 500, 4, screen, canvas, 0.25)).toEqual({ x: 350, y: 425, width: 300, height: 150 });
    expect(viewRect(10, 990, 4, screen, canvas)).toEqual({ x: 0, y: 940, width: 110, height: 60 });
  });

  it("knows when a frame still covers the view", () => {
    expect(covers({ x: 0, y: 0, width: 10, height: 10 }, { x: 2, y: 2, width: 8, height: 8 })).toBe(true);
    expect(covers({ x: 0, y: 0, width: 10, height: 10 }, { x: 2, y: 2, width: 9, height: 8 })).toBe(false);
  });

  it("renders the view with bounded frames and speed", () => {
    const rect = { x: 1, y: 2, width: 3, height: 4 };
    expect(renderRequest([10, 20], rect, 60, 2)).toEqual({ from: 10, to: 20, ...rect, frames: 60, delayMs: 50, format: "gif" });
    expect(renderRequest([10, 20], rect, 5000, 8)).toMatchObject({ frames: RENDER_FRAMES_MAX, delayMs: 20 });
    expect(renderRequest([10, 20], rect, 0, 0)).toMatchObject({ frames: RENDER_FRAMES_MIN, delayMs: 100 });
  });
});
