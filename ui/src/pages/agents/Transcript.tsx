// The transcript of one agent run: its steps, tool calls, results and denied calls, followed
// live from the job's events or read from `/jobs/{id}/transcript` once the run is over.

import { useEffect, useRef, useState } from "preact/hooks";
import { errorFromResponse, FINAL_STATES, getJob, isAbort, openJobEvents, type Job, type JobState } from "../../api";
import { DENIED_CODES, getTranscript, type StoredTranscript } from "../../admin";
import { ErrorNotice } from "../../components/ErrorNotice";
import { StateBadge } from "../../components/StateBadge";
import { FOLLOW_STATUS_TEXT, follow, FollowError, type Follower, type FollowStatus } from "../../events";
import { formatDuration, prettyJson, shortId } from "../../format";
import { useTokenVersion } from "../../hooks";
import { applyEvent, emptyModel, type JobStreamModel } from "../../jobStream";
import { jobHref } from "../../router";
import { runFromStream, runFromTranscript, type CallView, type RunEnd, type StepView } from "./runView";

function pretty(content: string): string {
  const trimmed = content.trim();
  if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
    try {
      return prettyJson(JSON.parse(trimmed));
    } catch {
      return content;
    }
  }
  return content;
}

function CallItem({ call, live }: { call: CallView; live: boolean }) {
  const code = call.result?.code ?? null;
  const denied = code !== null && DENIED_CODES.has(code);
  const kind = denied ? " denied" : code ? " failed" : "";
  return (
    <li class={`t-call${kind}`} data-testid="tool-call" data-denied={denied ? "true" : undefined} data-tool={call.tool}>
      <div class="t-call-head">
        <span class="t-label">Tool call</span>
        <code class="t-tool">{call.tool}</code>
        {denied ? (
          <strong class="denied-mark">
            denied <code>{code}</code>
          </strong>
        ) : code ? (
          <strong class="error-mark">
            failed <code>{code}</code>
          </strong>
        ) : call.result ? (
          <span class="ok-mark">ok</span>
        ) : (
          <span class="muted">{live ? "running…" : "not run (the run stopped first)"}</span>
        )}
        {call.result?.durationS != null && <span class="muted">{formatDuration(call.result.durationS * 1000)}</span>}
      </div>
      {call.args !== undefined && (
        <div class="t-io">
          <span class="t-label">Arguments</span>
          <pre class="t-pre" tabIndex={0} aria-label={`Arguments of ${call.tool}`}>
            {typeof call.args === "string" ? call.args : prettyJson(call.args)}
          </pre>
        </div>
      )}
      {call.result && (
        <div class="t-io">
          <span class="t-label">{denied ? "Reason" : "Result"}</span>
          <pre class="t-pre" tabIndex={0} aria-label={`${denied ? "Reason" : "Result"} of ${call.tool}`}>
            {pretty(call.result.content)}
          </pre>
          {call.result.truncated && <p class="help muted">Cut short; the job page and stored transcript keep more.</p>}
        </div>
      )}
    </li>
  );
}

/** Whether the step's text is the final answer (shown once, below the steps). */
function isAnswer(step: StepView, answer: string | null): boolean {
  if (answer === null || step.calls.length > 0 || !step.text) return false;
  return step.text === answer || (step.text.endsWith("…") && answer.startsWith(step.text.slice(0, -1)));
}

function StepItem({ step, live, answer }: { step: StepView; live: boolean; answer: string | null }) {
  const tokens =
    step.promptTokens !== null || step.completionTokens !== null ? `${step.promptTokens ?? 0} + ${step.completionTokens ?? 0} tokens` : null;
  const meta = [step.model && `${step.model}${step.provider ? ` via ${step.provider}` : ""}`, tokens, step.finishReason && `finish: ${step.finishReason}`]
    .filter(Boolean)
    .join(" · ");
  return (
    <li class="t-step" data-testid="transcript-step" data-step={step.step}>
      <div class="t-step-head">
        <h3>Step {step.step}</h3>
        {meta && <span class="muted">{meta}</span>}
      </div>
      {isAnswer(step, answer) ? <p class="muted">Answered without tool calls (the answer is below).</p> : step.text && <div class="t-text">{step.text}</div>}
      {step.calls.length > 0 && (
        <ol class="t-calls" aria-label={`Tool calls of step ${step.step}`}>
          {step.calls.map((call, i) => (
            <CallItem key={call.id || i} call={call} live={live} />
          ))}
        </ol>
      )}
    </li>
  );
}

function EndSummary({ end }: { end: RunEnd }) {
  const parts = [
    end.steps !== null && `${end.steps} ${end.steps === 1 ? "step" : "steps"}`,
    end.promptTokens !== null && `${end.promptTokens} + ${end.completionTokens ?? 0} tokens`,
    end.costUsd !== null && end.costUsd > 0 && `$${end.costUsd.toFixed(4)}`,
    end.durationS !== null && formatDuration(end.durationS * 1000),
  ].filter(Boolean);
  return (
    <div class="t-end">
      <p>
        Run ended: <span class={`badge badge-run-${end.status}`}>{end.status.replace(/_/g, " ")}</span>
        {end.limit && (
          <>
            {" "}
            at its <code>{end.limit}</code> limit
          </>
        )}
        {parts.length > 0 && <span class="muted"> — {parts.join(", ")}</span>}
      </p>
      {end.error && (
        <p class="notice notice-error">
          <code class="notice-code">{end.error.code}</code> {end.error.detail}
        </p>
      )}
    </div>
  );
}

export function RunTranscript({ jobId, focus, onClose }: { jobId: string; focus: boolean; onClose(): void }) {
  const [job, setJob] = useState<Job | null>(null);
  const [stored, setStored] = useState<StoredTranscript | null>(null);
  const [source, setSource] = useState<"live" | "stored" | null>(null);
  const [status, setStatus] = useState<FollowStatus>("connecting");
  const [error, setError] = useState<unknown>(null);
  const [, setTick] = useState(0);
  const model = useRef<JobStreamModel>(emptyModel());
  const heading = useRef<HTMLHeadingElement>(null);
  const tokenVersion = useTokenVersion();

  useEffect(() => {
    if (focus) heading.current?.focus();
  }, []);

  useEffect(() => {
    const controller = new AbortController();
    let alive = true;
    let follower: Follower | null = null;
    let frame = 0;
    model.current = emptyModel();
    setStored(null);
    setSource(null);
    setError(null);
    setStatus("connecting");
    const render = (): void => {
      if (frame === 0) {
        frame = requestAnimationFrame(() => {
          frame = 0;
          setTick((t) => t + 1);
        });
      }
    };
    const refresh = (): void => {
      getJob(jobId, controller.signal)
        .then((found) => alive && setJob(found))
        .catch(() => undefined);
    };
    const live = (): void => {
      setSource("live");
      follower = follow({
        open: (after, signal) => openJobEvents(jobId, after, signal),
        onEvent: (event) => {
          applyEvent(model.current, event);
          const state = model.current.state;
          if (event.type === "state" && state) setJob((prev) => (prev ? { ...prev, state: state as JobState } : prev));
          render();
        },
        onStatus: (next, caught) => {
          setStatus(next);
          if (next === "ended") refresh();
          if (next === "failed") {
            if (caught instanceof FollowError) void errorFromResponse(caught.response).then(setError);
            else setError(caught);
          }
        },
        isOver: async () => {
          const found = await getJob(jobId);
          if (alive) setJob(found);
          return FINAL_STATES.has(found.state);
        },
      });
    };
    void (async () => {
      try {
        const found = await getJob(jobId, controller.signal);
        if (!alive) return;
        setJob(found);
        if (FINAL_STATES.has(found.state)) {
          const transcript = await getTranscript(jobId, controller.signal);
          if (!alive) return;
          if (transcript) {
            setStored(transcript);
            setSource("stored");
            return;
          }
        }
        live();
      } catch (caught) {
        if (alive && !isAbort(caught)) setError(caught);
      }
    })();
    return () => {
      alive = false;
      controller.abort();
      follower?.stop();
      cancelAnimationFrame(frame);
    };
  }, [jobId, tokenVersion]);

  const view = source === "stored" && stored ? runFromTranscript(stored) : source === "live" ? runFromStream(model.current) : null;
  const isLive = source === "live" && status !== "ended" && status !== "failed";
  const denied = view ? view.steps.reduce((n, s) => n + s.calls.filter((c) => c.result?.code && DENIED_CODES.has(c.result.code)).length, 0) : 0;
  const jobFailure = job?.state === "failed" && job.error_code && !view?.end?.error ? job : null;

  return (
    <section class="panel" aria-labelledby="run-title" id="run-transcript">
      <div class="panel-head">
        <h2 id="run-title" ref={heading} tabIndex={-1}>
          Run <span class="mono">{shortId(jobId)}</span>
        </h2>
        <div class="inline">
          {job && <StateBadge state={job.state} />}
          {source === "live" && (
            <span class={`stream-status stream-${status}`} role="status">
              {FOLLOW_STATUS_TEXT[status]}
            </span>
          )}
          <a href={jobHref(jobId)}>Job page</a>
          <button type="button" class="button quiet" onClick={onClose}>
            Close
          </button>
        </div>
      </div>
      <p class="help muted">
        {source === "stored"
          ? "The stored transcript (GET /jobs/{id}/transcript)."
          : source === "live"
            ? "Followed live from the job's events."
            : "Loading…"}
        {denied > 0 && (
          <strong class="denied-count">
            {" "}
            {denied} denied {denied === 1 ? "call" : "calls"}.
          </strong>
        )}
      </p>
      <ErrorNotice error={error} title="Could not load the run" />
      {view && (
        <div aria-live={isLive ? "polite" : "off"} aria-relevant="additions text">
          {view.notes.length > 0 && (
            <ul class="t-notes">
              {view.notes.map((note, i) => (
                <li key={i}>{note}</li>
              ))}
            </ul>
          )}
          {view.steps.length === 0 && <p class="muted">{isLive ? "No step yet." : "The run has no steps."}</p>}
          {view.steps.length > 0 && (
            <ol class="transcript" aria-label="Steps">
              {view.steps.map((step) => (
                <StepItem key={step.step} step={step} live={isLive} answer={view.answer} />
              ))}
            </ol>
          )}
          {view.answer !== null && (
            <section class="t-answer" aria-labelledby="answer-title" data-testid="agent-answer">
              <h3 id="answer-title">Answer</h3>
              <div class="t-text">{view.answer}</div>
            </section>
          )}
          {view.end && <EndSummary end={view.end} />}
        </div>
      )}
      {jobFailure && (
        <p class="notice notice-error">
          <code class="notice-code">{jobFailure.error_code}</code> {jobFailure.error_detail}
        </p>
      )}
    </section>
  );
}
