import { useEffect, useRef, useState } from "preact/hooks";
import {
  ApiError,
  cancelJob,
  downloadArtifact,
  errorFromResponse,
  FINAL_STATES,
  getJob,
  getResult,
  isAbort,
  listArtifacts,
  openJobEvents,
  type Artifact,
  type Job,
  type JobState,
} from "../api";
import { ErrorNotice } from "../components/ErrorNotice";
import { StateBadge } from "../components/StateBadge";
import { TraceTimeline } from "../components/TraceTimeline";
import { FOLLOW_STATUS_TEXT, follow, FollowError, type FollowStatus } from "../events";
import { formatBytes, formatTime, prettyJson } from "../format";
import { useTokenVersion } from "../hooks";
import { applyEvent, emptyModel, type JobStreamModel } from "../jobStream";
import { announce } from "../notices";

const SHOWN_LOGS = 500;

/** A fresh copy of the job never takes a final state back (a GET may race a state event). */
function mergeJob(prev: Job | null, next: Job): Job {
  if (prev && FINAL_STATES.has(prev.state) && !FINAL_STATES.has(next.state)) return { ...next, state: prev.state };
  return next;
}

function Output({ model, status }: { model: JobStreamModel; status: FollowStatus }) {
  const progress = model.progress;
  const hidden = model.logs.length - SHOWN_LOGS;
  return (
    <section class="panel" aria-labelledby="output-title">
      <div class="panel-head">
        <h2 id="output-title">Output</h2>
        <span class={`stream-status stream-${status}`} role="status" data-testid="stream-status">
          {FOLLOW_STATUS_TEXT[status]}
        </span>
      </div>
      <pre class="output" data-testid="job-output" aria-live="polite" aria-labelledby="output-title" tabIndex={0}>
        {model.output}
      </pre>
      {model.output === "" && <p class="muted">No output yet.</p>}
      {progress && (
        <div class="progress">
          <label for="job-progress">Progress</label>
          {progress.total === null ? (
            <progress id="job-progress" aria-valuetext={`${progress.done} done`} />
          ) : (
            <progress id="job-progress" value={progress.done} max={progress.total}>
              {progress.done} / {progress.total}
            </progress>
          )}
          <span>{progress.total === null ? `${progress.done} done` : `${progress.done} / ${progress.total}`}</span>
        </div>
      )}
      {model.logs.length > 0 && (
        <>
          <h3>Log</h3>
          {hidden > 0 && <p class="muted">{hidden} earlier lines not shown.</p>}
          <ol class="logs">
            {model.logs.slice(-SHOWN_LOGS).map((line, i) => (
              <li key={line.seq ?? `x${i}`}>
                <span>{line.message}</span>
                {Object.keys(line.fields).length > 0 && <code class="log-fields">{JSON.stringify(line.fields)}</code>}
              </li>
            ))}
          </ol>
        </>
      )}
    </section>
  );
}

function Artifacts({ jobId, artifacts }: { jobId: string; artifacts: Artifact[] }) {
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const download = async (path: string): Promise<void> => {
    setBusy(path);
    setError(null);
    try {
      await downloadArtifact(jobId, path);
      announce(`Downloaded ${path}.`);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(null);
    }
  };
  return (
    <section class="panel" aria-labelledby="artifacts-title">
      <h2 id="artifacts-title">Artifacts</h2>
      <ErrorNotice error={error} title="Download failed" />
      <table class="table">
        <thead>
          <tr>
            <th scope="col">Path</th>
            <th scope="col" class="num">
              Size
            </th>
            <th scope="col">SHA-256</th>
            <th scope="col">
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {artifacts.map((artifact) => (
            <tr key={artifact.path}>
              <td class="mono">{artifact.path}</td>
              <td class="num">{formatBytes(artifact.size)}</td>
              <td class="mono" title={artifact.sha256}>
                {artifact.sha256.slice(0, 12)}…
              </td>
              <td>
                <button
                  type="button"
                  class="button"
                  disabled={busy === artifact.path}
                  aria-label={`Download ${artifact.path}`}
                  onClick={() => void download(artifact.path)}
                >
                  Download
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function JobDetail({ id }: { id: string }) {
  const [job, setJob] = useState<Job | null>(null);
  const [jobError, setJobError] = useState<unknown>(null);
  const [status, setStatus] = useState<FollowStatus>("connecting");
  const [streamError, setStreamError] = useState<unknown>(null);
  const [result, setResult] = useState<{ value: unknown } | null>(null);
  const [resultError, setResultError] = useState<unknown>(null);
  const [artifacts, setArtifacts] = useState<Artifact[] | null>(null);
  const [artifactsError, setArtifactsError] = useState<unknown>(null);
  const [cancelError, setCancelError] = useState<unknown>(null);
  const [cancelling, setCancelling] = useState(false);
  const [, setTick] = useState(0);
  const model = useRef<JobStreamModel>(emptyModel());
  const tokenVersion = useTokenVersion();

  const final = job !== null && FINAL_STATES.has(job.state);

  // The job row, and again (coalesced) after each state event.
  const refreshJob = useRef<() => void>(() => undefined);
  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = (): void => {
      getJob(id, controller.signal)
        .then((found) => {
          setJob((prev) => mergeJob(prev, found));
          setJobError(null);
        })
        .catch((caught) => {
          if (!isAbort(caught)) setJobError(caught);
        });
    };
    refreshJob.current = () => {
      clearTimeout(timer);
      timer = setTimeout(load, 150);
    };
    load();
    return () => {
      clearTimeout(timer);
      controller.abort();
      refreshJob.current = () => undefined;
    };
  }, [id, tokenVersion]);

  // The event stream, replayed from the start on every visit (and under a new token).
  useEffect(() => {
    model.current = emptyModel();
    setTick((t) => t + 1);
    setStreamError(null);
    let frame = 0;
    const render = (): void => {
      if (frame === 0) {
        frame = requestAnimationFrame(() => {
          frame = 0;
          setTick((t) => t + 1);
        });
      }
    };
    const follower = follow({
      open: (after, signal) => openJobEvents(id, after, signal),
      onEvent: (event) => {
        applyEvent(model.current, event);
        if (event.type === "state" && model.current.state) {
          const state = model.current.state as JobState;
          setJob((prev) => (prev ? mergeJob(prev, { ...prev, state }) : prev));
          refreshJob.current();
        }
        render();
      },
      onStatus: (next, error) => {
        setStatus(next);
        if (next === "live") setStreamError(null);
        if (next === "ended") refreshJob.current();
        if (next === "failed") {
          if (error instanceof FollowError) void errorFromResponse(error.response).then(setStreamError);
          else setStreamError(error);
        }
      },
      isOver: async () => {
        const found = await getJob(id);
        setJob((prev) => mergeJob(prev, found));
        return FINAL_STATES.has(found.state);
      },
    });
    return () => {
      follower.stop();
      cancelAnimationFrame(frame);
    };
  }, [id, tokenVersion]);

  // Once final: the result (succeeded) and the artifacts.
  useEffect(() => {
    if (!final || !job) return;
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const loadResult = (tries: number): void => {
      getResult(id, controller.signal)
        .then((value) => {
          setResult({ value });
          setResultError(null);
        })
        .catch((caught) => {
          if (isAbort(caught)) return;
          // The state event can come a moment before the row is final: ask again.
          if (caught instanceof ApiError && caught.code === "job_not_finished" && tries > 0) {
            timer = setTimeout(() => loadResult(tries - 1), 1000);
          } else {
            setResultError(caught);
          }
        });
    };
    if (job.state === "succeeded") loadResult(3);
    listArtifacts(id, controller.signal)
      .then((found) => {
        setArtifacts(found);
        setArtifactsError(null);
      })
      .catch((caught) => {
        if (!isAbort(caught)) setArtifactsError(caught);
      });
    return () => {
      clearTimeout(timer);
      controller.abort();
    };
  }, [id, final, job?.state, tokenVersion]);

  const cancel = async (): Promise<void> => {
    setCancelling(true);
    setCancelError(null);
    try {
      const updated = await cancelJob(id);
      setJob((prev) => mergeJob(prev, updated));
      announce("Cancellation requested.");
    } catch (caught) {
      setCancelError(caught);
    } finally {
      setCancelling(false);
    }
  };

  const stream = model.current;
  const shownResult = result ?? stream.result;
  const failure =
    job?.state === "failed"
      ? { code: job.error_code ?? stream.error?.code ?? "error", detail: job.error_detail ?? stream.error?.detail ?? "" }
      : null;

  return (
    <section aria-labelledby="job-title">
      <div class="page-head">
        <h1 id="job-title" tabIndex={-1}>
          Job <span class="mono">{id}</span>
        </h1>
        <a href="#/jobs">Job list</a>
      </div>

      <ErrorNotice error={jobError} title="Could not load the job" />

      {job && (
        <div class="panel">
          <dl class="facts">
            <dt>State</dt>
            <dd>
              <StateBadge state={job.state} testId="job-state" />
            </dd>
            <dt>Kind</dt>
            <dd>{job.kind}</dd>
            <dt>Principal</dt>
            <dd>{job.principal}</dd>
            <dt>Attempts</dt>
            <dd>
              {job.attempts} / {job.max_attempts}
            </dd>
            <dt>Created</dt>
            <dd>{formatTime(job.created_at)}</dd>
            <dt>Started</dt>
            <dd>{formatTime(job.started_at)}</dd>
            <dt>Finished</dt>
            <dd>{formatTime(job.finished_at)}</dd>
            <dt>Request ID</dt>
            <dd class="mono">{job.request_id ?? "—"}</dd>
            <dt>Trace ID</dt>
            <dd class="mono">{job.trace_id ?? "—"}</dd>
            {job.error_code && (
              <>
                <dt>Error</dt>
                <dd>
                  <code>{job.error_code}</code> {job.error_detail}
                </dd>
              </>
            )}
          </dl>
          {(job.state === "queued" || job.state === "running") && (
            <div class="actions">
              <button type="button" class="button danger" onClick={() => void cancel()} disabled={cancelling}>
                Cancel job
              </button>
            </div>
          )}
          <ErrorNotice error={cancelError} title="Could not cancel" />
        </div>
      )}

      <ErrorNotice error={streamError} title="Could not follow the job's events" />
      <Output model={stream} status={status} />

      {failure && (
        <section class="panel" aria-labelledby="failure-title">
          <h2 id="failure-title">Error</h2>
          <p class="notice notice-error">
            <code class="notice-code">{failure.code}</code> {failure.detail}
          </p>
        </section>
      )}

      {(job?.state === "succeeded" || shownResult) && (
        <section class="panel" aria-labelledby="result-title">
          <h2 id="result-title">Result</h2>
          {!shownResult && <ErrorNotice error={resultError} title="Could not load the result" />}
          {shownResult ? (
            <pre class="output mono" data-testid="job-result" tabIndex={0}>
              {prettyJson(shownResult.value)}
            </pre>
          ) : (
            resultError === null && <p class="muted">Loading result…</p>
          )}
        </section>
      )}

      <ErrorNotice error={artifactsError} title="Could not list the artifacts" />
      {artifacts && artifacts.length > 0 && <Artifacts jobId={id} artifacts={artifacts} />}

      <TraceTimeline jobId={id} final={final} />
    </section>
  );
}
