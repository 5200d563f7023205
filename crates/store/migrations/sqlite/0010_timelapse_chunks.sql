-- A render's result is stored in chunks of about a megabyte, written as the renderer goes and
-- read one at a time by a download, so neither holds a whole animation in memory. Chunks are
-- keyed by the attempt that wrote them: a job's result is the chunks of the attempt that finished
-- it (its `attempts` once done), whatever a stale renderer may still have written.
CREATE TABLE timelapse_job_chunks (
    job_id  TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    n       INTEGER NOT NULL,
    bytes   BLOB NOT NULL,
    PRIMARY KEY (job_id, attempt, n)
);
ALTER TABLE timelapse_jobs ADD COLUMN result_size INTEGER;
INSERT INTO timelapse_job_chunks (job_id, attempt, n, bytes)
    SELECT id, attempts, 0, result FROM timelapse_jobs WHERE result IS NOT NULL;
UPDATE timelapse_jobs SET result_size = length(result) WHERE result IS NOT NULL;
ALTER TABLE timelapse_jobs DROP COLUMN result;
-- The per-owner quota counts an owner's recent jobs.
CREATE INDEX timelapse_jobs_owner_created ON timelapse_jobs (owner_id, created_at);
