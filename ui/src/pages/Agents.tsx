// Agents: the workspace's agent profiles (`/agents`), one profile's view and edit form, its
// runs (`agent` jobs) and a run's transcript, followed live from the job's events or read
// from `/jobs/{id}/transcript` once the run is over.

import { useEffect, useRef, useState } from "preact/hooks";
import {
  errorFromResponse,
  FINAL_STATES,
  getJob,
  isAbort,
  listJobs,
  openJobEvents,
  submitJob,
  type Job,
  type JobState,
} from "../api";
import {
  BUILTIN_TOOLS,
  createAgent,
  deleteAgent,
  DENIED_CODES,
  errorsAt,
  fieldErrors,
  getAgent,
  getTranscript,
  listAgents,
  replaceAgent,
  type AgentProfile,
  type AgentRecord,
  type Isolation,
  type McpServer,
  type StoredTranscript,
} from "../admin";
import { ErrorNotice } from "../components/ErrorNotice";
import { StateBadge } from "../components/StateBadge";
import { follow, FollowError, type Follower, type FollowStatus } from "../events";
import { formatBytes, formatDuration, formatTime, prettyJson, shortId } from "../format";
import { usePolling, useTokenVersion } from "../hooks";
import { applyEvent, emptyModel, type JobStreamModel } from "../jobStream";
import { announce } from "../notices";
import { hrefWith, jobHref, navigate, replaceHash } from "../router";
import "./Admin.css";

const NAME_RULE = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const RUNS_REFRESH_MS = 4000;

const agentHref = (name: string): string => `#/agents/${encodeURIComponent(name)}`;

function focusInvalid(): void {
  requestAnimationFrame(() => {
    const el = document.querySelector<HTMLElement>('main [aria-invalid="true"]');
    if (el instanceof HTMLFieldSetElement) el.querySelector<HTMLElement>("input, textarea")?.focus();
    else el?.focus();
  });
}


// A run as shown: steps, their tool calls and results, the answer, how it ended.

export interface CallView {
  id: string;
  tool: string;
  args: unknown;
  result: { ok: boolean; code: string | null; content: string; durationS: number | null; truncated: boolean } | null;
}

export interface StepView {
  step: number;
  model: string;
  provider: string;
  finishReason: string | null;
  text: string;
  promptTokens: number | null;
  completionTokens: number | null;
  calls: CallView[];
}

export interface RunEnd {
  status: string;
  limit: string | null;
  error: { code: string; detail: string } | null;
  steps: number | null;
  promptTokens: number | null;
  completionTokens: number | null;
  costUsd: number | null;
  durationS: number | null;
}

export interface RunView {
  steps: StepView[];
  answer: string | null;
  notes: string[];
  end: RunEnd | null;
}

const str = (value: unknown): string => (typeof value === "string" ? value : value === null || value === undefined ? "" : String(value));
const num = (value: unknown): number | null => (typeof value === "number" && Number.isFinite(value) ? value : null);
const errorOf = (value: unknown): RunEnd["error"] => {
  if (typeof value !== "object" || value === null) return null;
  const record = value as Record<string, unknown>;
  return { code: str(record.code) || "error", detail: str(record.detail) };
};

/** The run so far, from its job's `log` events (`agent step`, `tool call`, `tool result`,
 * `agent finished`, `mcp server ready`) and `token` events (the answer). */
export function runFromStream(model: JobStreamModel): RunView {
  const steps: StepView[] = [];
  const byNumber = new Map<number, StepView>();
  const notes: string[] = [];
  let end: RunEnd | null = null;
  const stepOf = (value: unknown): StepView => {
    const n = num(value) ?? 0;
    let step = byNumber.get(n);
    if (!step) {
      step = { step: n, model: "", provider: "", finishReason: null, text: "", promptTokens: null, completionTokens: null, calls: [] };
      byNumber.set(n, step);
      steps.push(step);
    }
    return step;
  };
  for (const { message, fields: f } of model.logs) {
    if (message === "agent step") {
      const step = stepOf(f.step);
      step.model = str(f.model);
      step.provider = str(f.provider);
      step.finishReason = typeof f.finish_reason === "string" ? f.finish_reason : null;
      step.text = str(f.text);
      step.promptTokens = num(f.prompt_tokens);
      step.completionTokens = num(f.completion_tokens);
    } else if (message === "tool call") {
      stepOf(f.step).calls.push({ id: str(f.call_id), tool: str(f.tool), args: f.arguments, result: null });
    } else if (message === "tool result") {
      const step = stepOf(f.step);
      let call = step.calls.find((c) => c.id === str(f.call_id));
      if (!call) {
        call = { id: str(f.call_id), tool: str(f.tool), args: undefined, result: null };
        step.calls.push(call);
      }
      const content = str(f.content);
      call.result = {
        ok: f.ok === true,
        code: typeof f.code === "string" ? f.code : null,
        content,
        durationS: num(f.duration_s),
        truncated: content.length > 1000 && content.endsWith("…"),
      };
    } else if (message === "agent finished") {
      end = {
        status: str(f.status),
        limit: typeof f.limit === "string" ? f.limit : null,
        error: errorOf(f.error),
        steps: num(f.steps),
        promptTokens: num(f.prompt_tokens),
        completionTokens: num(f.completion_tokens),
        costUsd: num(f.cost_usd),
        durationS: num(f.duration_s),
      };
    } else if (message === "mcp server ready") {
      const tools = Array.isArray(f.tools) ? f.tools.map(str).join(", ") : "";
      notes.push(`MCP server ${str(f.server)} ready${tools ? `: ${tools}` : ""}`);
    }
  }
  return { steps, answer: model.output || null, notes, end };
}

function parseArguments(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A stored transcript as a run: each step's assistant message gives its text and calls, the
 * `tool` messages the results. */
export function runFromTranscript(t: StoredTranscript): RunView {
  const assistants = t.messages.filter((m) => m.role === "assistant");
  const results = new Map<string, string>();
  for (const m of t.messages) if (m.role === "tool" && m.tool_call_id) results.set(m.tool_call_id, m.content ?? "");
  const steps = t.steps.map((s, index): StepView => {
    const message = assistants[index];
    const outcomes = new Map(s.tool_calls.map((c) => [c.call_id, c]));
    const calls: CallView[] = (message?.tool_calls ?? []).map((tc) => {
      const o = outcomes.get(tc.id);
      outcomes.delete(tc.id);
      return {
        id: tc.id,
        tool: tc.function.name,
        args: parseArguments(tc.function.arguments),
        result: o ? { ok: o.ok, code: o.code, content: results.get(tc.id) ?? "", durationS: o.duration_s, truncated: o.truncated ?? false } : null,
      };
    });
    for (const o of outcomes.values()) {
      calls.push({
        id: o.call_id,
        tool: o.name,
        args: undefined,
        result: { ok: o.ok, code: o.code, content: results.get(o.call_id) ?? "", durationS: o.duration_s, truncated: o.truncated ?? false },
      });
    }
    return {
      step: s.step,
      model: s.model,
      provider: s.provider,
      finishReason: s.finish_reason,
      text: message?.content ?? "",
      promptTokens: s.usage.prompt_tokens,
      completionTokens: s.usage.completion_tokens,
      calls,
    };
  });
  const over = t.status !== "running" && t.status !== "pending";
  return {
    steps,
    answer: t.answer,
    notes: (t.artifacts_dropped ?? []).map((d) => `File not kept as an artifact: ${d.path} (${d.reason})`),
    end: over
      ? {
          status: t.status,
          limit: t.limit,
          error: errorOf(t.error),
          steps: t.steps.length,
          promptTokens: t.usage.prompt_tokens,
          completionTokens: t.usage.completion_tokens,
          costUsd: t.cost_usd,
          durationS: t.duration_s,
        }
      : null,
  };
}

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

const STATUS_TEXT: Record<FollowStatus, string> = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  ended: "stream complete",
  failed: "stream unavailable",
  stopped: "",
};

function RunTranscript({ jobId, focus, onClose }: { jobId: string; focus: boolean; onClose(): void }) {
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
              {STATUS_TEXT[status]}
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

// The profile form.

interface NumField {
  key: string;
  label: string;
  int?: boolean;
  nullable?: boolean;
  bytes?: boolean;
}

const LIMIT_FIELDS: NumField[] = [
  { key: "max_steps", label: "Max steps (model calls)", int: true },
  { key: "wall_s", label: "Wall clock (seconds)" },
  { key: "max_tokens", label: "Max tokens", int: true, nullable: true },
  { key: "max_cost_usd", label: "Max cost (USD)", nullable: true },
  { key: "max_read_bytes", label: "Max bytes per file read", int: true, bytes: true },
  { key: "max_write_bytes", label: "Max bytes per file write", int: true, bytes: true },
  { key: "max_fetch_bytes", label: "Max bytes per fetch", int: true, bytes: true },
  { key: "fetch_timeout_s", label: "Fetch timeout (seconds)" },
  { key: "max_result_chars", label: "Tool result shown to the model (characters)", int: true },
  { key: "mcp_timeout_s", label: "MCP request timeout (seconds)" },
];

const SANDBOX_FIELDS: NumField[] = [
  { key: "wall_s", label: "Wall clock per command (seconds)" },
  { key: "cpu_s", label: "CPU seconds per process", int: true },
  { key: "memory_bytes", label: "Memory (bytes)", int: true, bytes: true },
  { key: "file_size_bytes", label: "Largest file (bytes)", int: true, bytes: true },
  { key: "open_files", label: "Open files", int: true },
  { key: "processes", label: "Processes and threads", int: true },
  { key: "output_bytes", label: "Output kept per stream (bytes)", int: true, bytes: true },
  { key: "cpus", label: "CPUs (cores)" },
];

interface ServerDraft {
  key: number;
  name: string;
  transport: "command" | "url";
  command: string;
  args: string;
  url: string;
  paths: string;
}

interface Draft {
  name: string;
  model: string;
  systemPrompt: string;
  tools: string[];
  servers: ServerDraft[];
  egress: string;
  isolation: Isolation;
  limits: Record<string, string>;
  sandbox: Record<string, string>;
}

let serverKeys = 0;

function serverDraft(server?: McpServer): ServerDraft {
  serverKeys += 1;
  return {
    key: serverKeys,
    name: server?.name ?? "",
    transport: server?.url ? "url" : "command",
    command: server?.command ?? "",
    args: (server?.args ?? []).join("\n"),
    url: server?.url ?? "",
    paths: (server?.read_only_paths ?? []).join("\n"),
  };
}

function numbers(values: Record<string, number | null> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(values ?? {}).map(([k, v]) => [k, v === null ? "" : String(v)]));
}

function draftOf(record: AgentRecord | null): Draft {
  const p = record?.profile;
  return {
    name: record?.name ?? "",
    model: p?.model ?? "",
    systemPrompt: p?.system_prompt ?? "",
    tools: [...(p?.tools ?? [])],
    servers: (p?.mcp_servers ?? []).map(serverDraft),
    egress: (p?.egress_hosts ?? []).join("\n"),
    isolation: p?.isolation ?? "sandbox",
    limits: p ? numbers(p.limits) : { max_tokens: "200000" },
    sandbox: p ? numbers(p.sandbox) : {},
  };
}

const lines = (text: string): string[] =>
  text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);

function numbersOf(
  section: string,
  fields: readonly NumField[],
  values: Record<string, string>,
  base: Record<string, number | null> | undefined,
  errors: Record<string, string>,
): Record<string, number | null> {
  const out: Record<string, number | null> = { ...(base ?? {}) };
  for (const field of fields) {
    const text = (values[field.key] ?? "").trim();
    if (text === "") {
      if (field.nullable) out[field.key] = null;
      else delete out[field.key];
      continue;
    }
    const value = Number(text);
    if (!Number.isFinite(value)) errors[`${section}.${field.key}`] = "Enter a number.";
    else if (field.int && !Number.isInteger(value)) errors[`${section}.${field.key}`] = "Enter a whole number.";
    else out[field.key] = value;
  }
  return out;
}

/** The profile body of `draft` (`base`'s fields the form does not show kept), or the
 * problems found before sending. */
function bodyOf(draft: Draft, base: AgentProfile | null, creating: boolean): { body: AgentProfile; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  if (creating && !NAME_RULE.test(draft.name.trim()))
    errors.name = "1 to 64 lowercase letters, digits, _ or -, starting with a letter or digit.";
  if (!draft.model.trim()) errors.model = "Name the model (a router alias).";
  const servers = draft.servers.map((s, i): McpServer => {
    if (!s.name.trim()) errors[`mcp_servers.${i}.name`] = "Give the server a name.";
    if (s.transport === "url") {
      if (!/^https?:\/\//.test(s.url.trim())) errors[`mcp_servers.${i}.url`] = "An http:// or https:// URL.";
      return { name: s.name.trim(), url: s.url.trim() };
    }
    if (!s.command.trim()) errors[`mcp_servers.${i}.command`] = "The command that starts the server.";
    return { name: s.name.trim(), command: s.command.trim(), args: lines(s.args), read_only_paths: lines(s.paths) };
  });
  const { name: _name, ...rest } = base ?? { model: "" };
  const body: AgentProfile = {
    ...rest,
    model: draft.model.trim(),
    system_prompt: draft.systemPrompt.trim() ? draft.systemPrompt : null,
    tools: [...BUILTIN_TOOLS.filter((t) => draft.tools.includes(t)), ...draft.tools.filter((t) => !(BUILTIN_TOOLS as readonly string[]).includes(t))],
    mcp_servers: servers,
    egress_hosts: lines(draft.egress),
    isolation: draft.isolation,
    limits: numbersOf("limits", LIMIT_FIELDS, draft.limits, base?.limits, errors),
    sandbox: numbersOf("sandbox", SANDBOX_FIELDS, draft.sandbox, base?.sandbox, errors),
  };
  if (creating) body.name = draft.name.trim();
  return { body, errors };
}

/** Errors of the whole body put next to the field they name (the profile's own checks). */
function placed(errors: Record<string, string>): Record<string, string> {
  const whole = errors[""];
  if (!whole) return errors;
  const out = { ...errors };
  const field = /egress_hosts/.test(whole) ? "egress_hosts" : /MCP server/.test(whole) ? "mcp_servers" : /`tools`/.test(whole) ? "tools" : null;
  if (field) out[field] = out[field] ? `${out[field]} ${whole}` : whole;
  return out;
}

function FieldError({ id, text }: { id: string; text: string | null }) {
  return text ? (
    <p class="field-error" id={id}>
      {text}
    </p>
  ) : null;
}

function ProfileForm({ record, onSaved, onCancel }: { record: AgentRecord | null; onSaved(record: AgentRecord): void; onCancel(): void }) {
  const creating = record === null;
  const [draft, setDraft] = useState<Draft>(() => draftOf(record));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const first = useRef<HTMLInputElement>(null);

  useEffect(() => first.current?.focus(), []);

  const set = <K extends keyof Draft>(key: K, value: Draft[K]): void => setDraft((d) => ({ ...d, [key]: value }));
  const setServer = (index: number, change: Partial<ServerDraft>): void =>
    setDraft((d) => ({ ...d, servers: d.servers.map((s, i) => (i === index ? { ...s, ...change } : s)) }));
  const err = (key: string): string | null => errorsAt(errors, key);
  const invalid = (key: string): true | undefined => (err(key) ? true : undefined);
  const describedBy = (key: string, id: string, help?: string): string | undefined =>
    [help, err(key) ? `${id}-error` : undefined].filter(Boolean).join(" ") || undefined;

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    if (busy) return;
    const { body, errors: local } = bodyOf(draft, record?.profile ?? null, creating);
    setErrors(local);
    if (Object.keys(local).length > 0) {
      setError(null);
      focusInvalid();
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const saved = creating ? await createAgent(body) : await replaceAgent(record.name, body);
      announce(creating ? `Profile ${saved.name} created.` : `Profile ${saved.name} saved.`);
      onSaved(saved);
    } catch (caught) {
      setError(caught);
      setErrors(placed(fieldErrors(caught)));
      focusInvalid();
    } finally {
      setBusy(false);
    }
  };

  const numberField = (section: "limits" | "sandbox", field: NumField) => {
    const id = `pf-${section}-${field.key}`;
    const key = `${section}.${field.key}`;
    const value = draft[section][field.key] ?? "";
    const n = Number(value);
    const help = field.nullable
      ? "Empty: no limit."
      : field.bytes && value !== "" && Number.isFinite(n) && n > 0
        ? `= ${formatBytes(n)}`
        : undefined;
    return (
      <div class="field" key={id}>
        <label for={id}>{field.label}</label>
        <input
          id={id}
          type="number"
          inputMode={field.int ? "numeric" : "decimal"}
          step={field.int ? 1 : "any"}
          min={0}
          placeholder={field.nullable ? "no limit" : "default"}
          value={value}
          aria-invalid={invalid(key)}
          aria-describedby={describedBy(key, id, help ? `${id}-help` : undefined)}
          onInput={(e) => {
            const next = e.currentTarget.value;
            setDraft((d) => ({ ...d, [section]: { ...d[section], [field.key]: next } }));
          }}
        />
        {help && (
          <p class="help muted" id={`${id}-help`}>
            {help}
          </p>
        )}
        <FieldError id={`${id}-error`} text={err(key)} />
      </div>
    );
  };

  return (
    <form class="form profile-form" onSubmit={(e) => void submit(e)} noValidate aria-labelledby="profile-form-title">
      <h2 id="profile-form-title">{creating ? "New profile" : `Edit profile ${record.name}`}</h2>
      {creating && (
        <div class="field">
          <label for="pf-name">
            Name <span class="required" aria-hidden="true">*</span>
          </label>
          <input
            ref={first}
            id="pf-name"
            type="text"
            required
            maxLength={64}
            autoComplete="off"
            spellcheck={false}
            value={draft.name}
            aria-invalid={invalid("name")}
            aria-describedby={describedBy("name", "pf-name", "pf-name-help")}
            onInput={(e) => set("name", e.currentTarget.value)}
          />
          <p class="help muted" id="pf-name-help">
            Lowercase letters, digits, <code>_</code> and <code>-</code>; unique in the workspace.
          </p>
          <FieldError id="pf-name-error" text={err("name")} />
        </div>
      )}
      <div class="field">
        <label for="pf-model">
          Model <span class="required" aria-hidden="true">*</span>
        </label>
        <input
          ref={creating ? undefined : first}
          id="pf-model"
          type="text"
          required
          spellcheck={false}
          value={draft.model}
          aria-invalid={invalid("model")}
          aria-describedby={describedBy("model", "pf-model", "pf-model-help")}
          onInput={(e) => set("model", e.currentTarget.value)}
        />
        <p class="help muted" id="pf-model-help">
          A router alias of a model that can call tools.
        </p>
        <FieldError id="pf-model-error" text={err("model")} />
      </div>
      <div class="field">
        <label for="pf-prompt">System prompt</label>
        <textarea
          id="pf-prompt"
          rows={4}
          value={draft.systemPrompt}
          aria-invalid={invalid("system_prompt")}
          aria-describedby={describedBy("system_prompt", "pf-prompt")}
          onInput={(e) => set("systemPrompt", e.currentTarget.value)}
        />
        <FieldError id="pf-prompt-error" text={err("system_prompt")} />
      </div>
      <div class="field">
        <fieldset class="checks" aria-invalid={invalid("tools")} aria-describedby={describedBy("tools", "pf-tools", "pf-tools-help")}>
          <legend>Tools</legend>
          {BUILTIN_TOOLS.map((tool) => (
            <label key={tool}>
              <input
                type="checkbox"
                name="tools"
                value={tool}
                checked={draft.tools.includes(tool)}
                onChange={(e) => {
                  const on = e.currentTarget.checked;
                  setDraft((d) => ({ ...d, tools: on ? [...d.tools, tool] : d.tools.filter((t) => t !== tool) }));
                }}
              />
              <code>{tool}</code>
            </label>
          ))}
        </fieldset>
        <p class="help muted" id="pf-tools-help">
          None checked: the agent can only answer. <code>run_command</code> and <code>run_python</code> run in the sandbox.
        </p>
        <FieldError id="pf-tools-error" text={err("tools")} />
      </div>

      <fieldset class="group" aria-describedby={err("mcp_servers") ? "pf-servers-error" : undefined}>
        <legend>MCP servers</legend>
        {draft.servers.length === 0 && <p class="muted">None.</p>}
        {draft.servers.map((server, i) => {
          const base = `mcp_servers.${i}`;
          const id = `pf-mcp-${server.key}`;
          const label = server.name || `server ${i + 1}`;
          return (
            <fieldset class="group mcp-server" key={server.key} aria-invalid={invalid(base)}>
              <legend>MCP server {i + 1}</legend>
              <FieldError id={`${id}-error`} text={err(base) && !err(`${base}.name`) && !err(`${base}.command`) && !err(`${base}.url`) ? err(base) : null} />
              <div class="field">
                <label for={`${id}-name`}>Name</label>
                <input
                  id={`${id}-name`}
                  type="text"
                  spellcheck={false}
                  value={server.name}
                  aria-invalid={invalid(`${base}.name`)}
                  aria-describedby={describedBy(`${base}.name`, `${id}-name`)}
                  onInput={(e) => setServer(i, { name: e.currentTarget.value })}
                />
                <FieldError id={`${id}-name-error`} text={err(`${base}.name`)} />
              </div>
              <div class="field">
                <label for={`${id}-transport`}>Transport</label>
                <select
                  id={`${id}-transport`}
                  value={server.transport}
                  onChange={(e) => setServer(i, { transport: e.currentTarget.value === "url" ? "url" : "command" })}
                >
                  <option value="command">command (stdio, in the sandbox)</option>
                  <option value="url">URL (Streamable HTTP)</option>
                </select>
              </div>
              {server.transport === "command" ? (
                <>
                  <div class="field">
                    <label for={`${id}-command`}>Command</label>
                    <input
                      id={`${id}-command`}
                      type="text"
                      spellcheck={false}
                      value={server.command}
                      aria-invalid={invalid(`${base}.command`)}
                      aria-describedby={describedBy(`${base}.command`, `${id}-command`)}
                      onInput={(e) => setServer(i, { command: e.currentTarget.value })}
                    />
                    <FieldError id={`${id}-command-error`} text={err(`${base}.command`)} />
                  </div>
                  <div class="field">
                    <label for={`${id}-args`}>Arguments (one per line)</label>
                    <textarea
                      id={`${id}-args`}
                      rows={2}
                      spellcheck={false}
                      value={server.args}
                      aria-invalid={invalid(`${base}.args`)}
                      aria-describedby={describedBy(`${base}.args`, `${id}-args`)}
                      onInput={(e) => setServer(i, { args: e.currentTarget.value })}
                    />
                    <FieldError id={`${id}-args-error`} text={err(`${base}.args`)} />
                  </div>
                  <div class="field">
                    <label for={`${id}-paths`}>Read-only paths (one per line)</label>
                    <textarea
                      id={`${id}-paths`}
                      rows={2}
                      spellcheck={false}
                      value={server.paths}
                      aria-invalid={invalid(`${base}.read_only_paths`)}
                      aria-describedby={describedBy(`${base}.read_only_paths`, `${id}-paths`)}
                      onInput={(e) => setServer(i, { paths: e.currentTarget.value })}
                    />
                    <FieldError id={`${id}-paths-error`} text={err(`${base}.read_only_paths`)} />
                  </div>
                </>
              ) : (
                <div class="field">
                  <label for={`${id}-url`}>URL</label>
                  <input
                    id={`${id}-url`}
                    type="text"
                    inputMode="url"
                    spellcheck={false}
                    placeholder="https://"
                    value={server.url}
                    aria-invalid={invalid(`${base}.url`)}
                    aria-describedby={describedBy(`${base}.url`, `${id}-url`, `${id}-url-help`)}
                    onInput={(e) => setServer(i, { url: e.currentTarget.value })}
                  />
                  <p class="help muted" id={`${id}-url-help`}>
                    Its host must be one of the egress hosts.
                  </p>
                  <FieldError id={`${id}-url-error`} text={err(`${base}.url`)} />
                </div>
              )}
              <div class="actions">
                <button
                  type="button"
                  class="button quiet"
                  onClick={() => setDraft((d) => ({ ...d, servers: d.servers.filter((_, j) => j !== i) }))}
                >
                  Remove {label}
                </button>
              </div>
            </fieldset>
          );
        })}
        <FieldError id="pf-servers-error" text={err("mcp_servers") && !draft.servers.some((_, i) => err(`mcp_servers.${i}`)) ? err("mcp_servers") : null} />
        <div class="actions">
          <button type="button" class="button" onClick={() => setDraft((d) => ({ ...d, servers: [...d.servers, serverDraft()] }))}>
            Add MCP server
          </button>
        </div>
      </fieldset>

      <div class="field">
        <label for="pf-egress">Egress hosts (one per line)</label>
        <textarea
          id="pf-egress"
          rows={3}
          spellcheck={false}
          value={draft.egress}
          aria-invalid={invalid("egress_hosts")}
          aria-describedby={describedBy("egress_hosts", "pf-egress", "pf-egress-help")}
          onInput={(e) => set("egress", e.currentTarget.value)}
        />
        <p class="help muted" id="pf-egress-help">
          What <code>fetch_url</code> and HTTP MCP servers may reach: <code>host</code>, <code>host:port</code> or{" "}
          <code>*.domain</code>. Empty: nothing.
        </p>
        <FieldError id="pf-egress-error" text={err("egress_hosts")} />
      </div>

      <fieldset class="checks" aria-invalid={invalid("isolation")} aria-describedby={describedBy("isolation", "pf-isolation")}>
        <legend>Isolation</legend>
        {(["sandbox", "vm"] as const).map((value) => (
          <label key={value}>
            <input type="radio" name="isolation" value={value} checked={draft.isolation === value} onChange={() => set("isolation", value)} />
            {value === "sandbox" ? "sandbox (bubblewrap)" : "vm (a throwaway VM per sandbox)"}
          </label>
        ))}
      </fieldset>
      <FieldError id="pf-isolation-error" text={err("isolation")} />

      <fieldset class="group">
        <legend>Run limits</legend>
        <p class="help muted">Empty fields take the server's default, except where empty means no limit.</p>
        <div class="field-grid">{LIMIT_FIELDS.map((f) => numberField("limits", f))}</div>
      </fieldset>
      <fieldset class="group">
        <legend>Sandbox limits (each command)</legend>
        <div class="field-grid">{SANDBOX_FIELDS.map((f) => numberField("sandbox", f))}</div>
      </fieldset>

      <ErrorNotice error={error} title={creating ? "The profile was not created" : "The profile was not saved"} />
      <div class="actions">
        <button type="submit" class="button primary" disabled={busy} aria-busy={busy}>
          {creating ? "Create profile" : "Save profile"}
        </button>
        <button type="button" class="button quiet" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

// Views.

function Tags({ items, none, label }: { items: readonly string[] | undefined; none: string; label: string }) {
  if (!items || items.length === 0) return <span class="muted">{none}</span>;
  return (
    <ul class="tags" aria-label={label}>
      {items.map((item) => (
        <li key={item}>
          <code>{item}</code>
        </li>
      ))}
    </ul>
  );
}

function limitText(field: NumField, value: number | null | undefined): string {
  if (value === null) return "no limit";
  if (value === undefined) return "default";
  return field.bytes ? `${value} (${formatBytes(value)})` : String(value);
}

function ProfileView({ record }: { record: AgentRecord }) {
  const p = record.profile;
  return (
    <>
      <dl class="facts">
        <dt>Model</dt>
        <dd>
          <code>{p.model}</code>
        </dd>
        <dt>Isolation</dt>
        <dd>{p.isolation ?? "sandbox"}</dd>
        <dt>Tools</dt>
        <dd>
          <Tags items={p.tools} none="none: the agent can only answer" label="Tools" />
        </dd>
        <dt>MCP servers</dt>
        <dd>
          {p.mcp_servers && p.mcp_servers.length > 0 ? (
            <ul class="plain">
              {p.mcp_servers.map((s) => (
                <li key={s.name}>
                  <strong>{s.name}</strong>:{" "}
                  {s.url ? (
                    <code>{s.url}</code>
                  ) : (
                    <code>{[s.command ?? "", ...(s.args ?? [])].join(" ")}</code>
                  )}
                  {s.read_only_paths && s.read_only_paths.length > 0 && (
                    <span class="muted"> (read-only: {s.read_only_paths.join(", ")})</span>
                  )}
                </li>
              ))}
            </ul>
          ) : (
            <span class="muted">none</span>
          )}
        </dd>
        <dt>Egress hosts</dt>
        <dd>
          <Tags items={p.egress_hosts} none="none: no network" label="Egress hosts" />
        </dd>
        <dt>System prompt</dt>
        <dd>{p.system_prompt ? <div class="t-text">{p.system_prompt}</div> : <span class="muted">none</span>}</dd>
        <dt>Created</dt>
        <dd>{formatTime(record.created_at)}</dd>
        <dt>Updated</dt>
        <dd>{formatTime(record.updated_at)}</dd>
      </dl>
      <div class="limit-tables">
        {(
          [
            ["Run limits", LIMIT_FIELDS, p.limits],
            ["Sandbox limits (each command)", SANDBOX_FIELDS, p.sandbox],
          ] as const
        ).map(([title, fields, values]) => (
          <table class="kv" key={title}>
            <caption>{title}</caption>
            <tbody>
              {fields.map((f) => (
                <tr key={f.key}>
                  <th scope="row">{f.label}</th>
                  <td class="num">{limitText(f, values?.[f.key])}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ))}
      </div>
    </>
  );
}

function RunForm({ agent, onStarted }: { agent: string; onStarted(job: Job): void }) {
  const [task, setTask] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const form = useRef<HTMLFormElement>(null);

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    if (busy) return;
    if (!task.trim()) {
      setErrors({ task: "Say what the agent is to do." });
      setError(null);
      focusInvalid();
      return;
    }
    setBusy(true);
    setError(null);
    setErrors({});
    try {
      const job = await submitJob("agent", { agent, task });
      announce(`Run ${shortId(job.id)} of ${agent} started.`);
      setTask("");
      onStarted(job);
    } catch (caught) {
      setError(caught);
      setErrors(fieldErrors(caught, ["input"]));
      focusInvalid();
    } finally {
      setBusy(false);
    }
  };

  const taskError = errorsAt(errors, "task");
  return (
    <form ref={form} class="form" onSubmit={(e) => void submit(e)} noValidate aria-labelledby="run-form-title">
      <h2 id="run-form-title">Start a run</h2>
      <div class="field">
        <label for="run-task">
          Task <span class="required" aria-hidden="true">*</span>
        </label>
        <textarea
          id="run-task"
          rows={3}
          required
          maxLength={100_000}
          value={task}
          aria-invalid={taskError ? true : undefined}
          aria-describedby={taskError ? "run-task-help run-task-error" : "run-task-help"}
          onInput={(e) => setTask(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
              e.preventDefault();
              form.current?.requestSubmit();
            }
          }}
        />
        <p class="help muted" id="run-task-help">
          Submitted as an <code>agent</code> job (needs <code>agents:run</code> and <code>models:use</code>). Ctrl+Enter
          starts it.
        </p>
        <FieldError id="run-task-error" text={taskError} />
      </div>
      <ErrorNotice error={error} title="The run was not started" />
      <div class="actions">
        <button type="submit" class="button primary" disabled={busy} aria-busy={busy}>
          Start run
        </button>
      </div>
    </form>
  );
}

function RunsTable({ runs, selected, onSelect }: { runs: Job[]; selected: string | null; onSelect(id: string): void }) {
  return (
    <div class="table-scroll">
      <table class="table">
        <caption class="sr-only">Recent runs</caption>
        <thead>
          <tr>
            <th scope="col">Job</th>
            <th scope="col">State</th>
            <th scope="col">Created</th>
            <th scope="col">Finished</th>
            <th scope="col">Error</th>
            <th scope="col">
              <span class="sr-only">Transcript</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {runs.map((job) => (
            <tr key={job.id} data-testid="agent-run-row" data-job-id={job.id} class={selected === job.id ? "selected" : undefined}>
              <th scope="row">
                <a href={jobHref(job.id)} class="mono" title={job.id}>
                  {shortId(job.id)}
                </a>
              </th>
              <td>
                <StateBadge state={job.state} />
              </td>
              <td>
                <time dateTime={job.created_at}>{formatTime(job.created_at)}</time>
              </td>
              <td>{job.finished_at ? <time dateTime={job.finished_at}>{formatTime(job.finished_at)}</time> : "—"}</td>
              <td>{job.error_code ? <code>{job.error_code}</code> : "—"}</td>
              <td>
                <button
                  type="button"
                  class="button"
                  aria-pressed={selected === job.id}
                  aria-controls="run-transcript"
                  aria-label={`Transcript of run ${job.id}`}
                  onClick={() => onSelect(job.id)}
                >
                  Transcript
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function AgentDetail({ name }: { name: string }) {
  const [record, setRecord] = useState<AgentRecord | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [editing, setEditing] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [deleteError, setDeleteError] = useState<unknown>(null);
  const [runs, setRuns] = useState<Job[] | null>(null);
  const [runsError, setRunsError] = useState<unknown>(null);
  const [runsVersion, setRunsVersion] = useState(0);
  const [runId, setRunId] = useState<string | null>(() => new URLSearchParams(location.hash.split("?")[1] ?? "").get("run"));
  const [focusRun, setFocusRun] = useState(false);
  const tokenVersion = useTokenVersion();
  const editButton = useRef<HTMLButtonElement>(null);
  const deleteButton = useRef<HTMLButtonElement>(null);
  const confirmButton = useRef<HTMLButtonElement>(null);

  useEffect(() => replaceHash(hrefWith(`agents/${encodeURIComponent(name)}`, { run: runId })), [runId]);

  useEffect(() => {
    const controller = new AbortController();
    setLoadError(null);
    getAgent(name, controller.signal)
      .then(setRecord)
      .catch((caught) => {
        if (!isAbort(caught)) setLoadError(caught);
      });
    return () => controller.abort();
  }, [name, tokenVersion]);

  useEffect(() => {
    if (confirming) confirmButton.current?.focus();
  }, [confirming]);

  // The agent jobs of this profile, refreshed while the tab is visible.
  usePolling(
    async (signal) => {
      try {
        const page = await listJobs({ agent: name, limit: 50 }, signal);
        if (signal.aborted) return false;
        setRuns(page.jobs);
        setRunsError(null);
      } catch (caught) {
        if (signal.aborted || isAbort(caught)) return false;
        setRunsError(caught);
      }
      return true;
    },
    RUNS_REFRESH_MS,
    [name, tokenVersion, runsVersion],
  );

  const remove = async (): Promise<void> => {
    setDeleting(true);
    setDeleteError(null);
    try {
      await deleteAgent(name);
      announce(`Profile ${name} deleted.`);
      navigate("#/agents");
    } catch (caught) {
      setDeleteError(caught);
    } finally {
      setDeleting(false);
    }
  };

  const select = (id: string): void => {
    setFocusRun(true);
    setRunId((current) => (current === id ? null : id));
  };

  return (
    <section aria-labelledby="agent-title">
      <div class="page-head">
        <h1 id="agent-title" tabIndex={-1}>
          Agent <span class="mono">{name}</span>
        </h1>
        <a href="#/agents">All profiles</a>
      </div>

      <ErrorNotice error={loadError} title="Could not load the profile" />
      {record === null && loadError === null && (
        <p class="muted" role="status">
          Loading profile…
        </p>
      )}

      {record && (
        <section class="panel" aria-labelledby={editing ? "profile-form-title" : "profile-title"}>
          {editing ? (
            <ProfileForm
              record={record}
              onSaved={(saved) => {
                setRecord(saved);
                setEditing(false);
                requestAnimationFrame(() => editButton.current?.focus());
              }}
              onCancel={() => {
                setEditing(false);
                requestAnimationFrame(() => editButton.current?.focus());
              }}
            />
          ) : (
            <>
              <div class="panel-head">
                <h2 id="profile-title">Profile</h2>
                <div class="inline">
                  <button ref={editButton} type="button" class="button" onClick={() => setEditing(true)}>
                    Edit
                  </button>
                  {!confirming && (
                    <button ref={deleteButton} type="button" class="button" onClick={() => setConfirming(true)}>
                      Delete
                    </button>
                  )}
                </div>
              </div>
              {confirming && (
                <div class="confirm notice" role="group" aria-label={`Delete profile ${name}?`}>
                  <span>Delete profile {name}? Runs keep their transcripts.</span>
                  <button ref={confirmButton} type="button" class="button danger" disabled={deleting} aria-busy={deleting} onClick={() => void remove()}>
                    Delete {name}
                  </button>
                  <button
                    type="button"
                    class="button quiet"
                    onClick={() => {
                      setConfirming(false);
                      setDeleteError(null);
                      requestAnimationFrame(() => deleteButton.current?.focus());
                    }}
                  >
                    Keep
                  </button>
                </div>
              )}
              <ErrorNotice error={deleteError} title="Could not delete the profile" />
              <ProfileView record={record} />
            </>
          )}
        </section>
      )}

      {record && (
        <section class="panel">
          <RunForm
            agent={name}
            onStarted={(job) => {
              setRuns((prev) => [job, ...(prev ?? []).filter((j) => j.id !== job.id)]);
              setFocusRun(false);
              setRunId(job.id);
              setRunsVersion((v) => v + 1);
            }}
          />
        </section>
      )}

      <section class="panel" aria-labelledby="runs-title">
        <h2 id="runs-title">Recent runs</h2>
        <ErrorNotice error={runsError} title="Could not list the runs" />
        {runs === null && runsError === null && (
          <p class="muted" role="status">
            Loading runs…
          </p>
        )}
        {runs !== null && runs.length === 0 && <p class="muted">No runs of this profile yet.</p>}
        {runs !== null && runs.length > 0 && <RunsTable runs={runs} selected={runId} onSelect={select} />}
      </section>

      {runId && (
        <RunTranscript
          key={runId}
          jobId={runId}
          focus={focusRun}
          onClose={() => {
            const id = runId;
            setRunId(null);
            requestAnimationFrame(() => document.querySelector<HTMLElement>(`tr[data-job-id="${CSS.escape(id)}"] button`)?.focus());
          }}
        />
      )}
    </section>
  );
}

function AgentList() {
  const [agents, setAgents] = useState<AgentRecord[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [creating, setCreating] = useState(false);
  const tokenVersion = useTokenVersion();
  const newButton = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    const controller = new AbortController();
    setError(null);
    listAgents(controller.signal)
      .then(setAgents)
      .catch((caught) => {
        if (!isAbort(caught)) setError(caught);
      });
    return () => controller.abort();
  }, [tokenVersion]);

  return (
    <section aria-labelledby="agents-title">
      <div class="page-head">
        <h1 id="agents-title" tabIndex={-1}>
          Agents
        </h1>
        <button ref={newButton} type="button" class="button primary" aria-expanded={creating} aria-controls="new-profile" onClick={() => setCreating((c) => !c)}>
          New profile
        </button>
      </div>

      <div id="new-profile">
        {creating && (
          <section class="panel">
            <ProfileForm
              record={null}
              onSaved={(saved) => navigate(agentHref(saved.name))}
              onCancel={() => {
                setCreating(false);
                newButton.current?.focus();
              }}
            />
          </section>
        )}
      </div>

      <ErrorNotice error={error} title="Could not load the profiles" />
      {agents === null && error === null && (
        <p class="muted" role="status">
          Loading profiles…
        </p>
      )}
      {agents !== null && agents.length === 0 && (
        <div class="empty">
          <p>No agent profiles in this workspace yet.</p>
          <p>A profile says which model an agent uses, which tools and hosts it may reach, and its limits.</p>
        </div>
      )}
      {agents !== null && agents.length > 0 && (
        <div class="table-scroll">
          <table class="table">
            <caption class="sr-only">Agent profiles</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Model</th>
                <th scope="col">Isolation</th>
                <th scope="col">Tools</th>
                <th scope="col" class="num">
                  MCP servers
                </th>
                <th scope="col" class="num">
                  Egress hosts
                </th>
                <th scope="col">Updated</th>
              </tr>
            </thead>
            <tbody>
              {agents.map((agent) => (
                <tr key={agent.name} data-testid="agent-row" data-agent={agent.name}>
                  <th scope="row">
                    <a href={agentHref(agent.name)}>{agent.name}</a>
                  </th>
                  <td>
                    <code>{agent.profile.model}</code>
                  </td>
                  <td>{agent.profile.isolation ?? "sandbox"}</td>
                  <td>
                    <Tags items={agent.profile.tools} none="none" label={`Tools of ${agent.name}`} />
                  </td>
                  <td class="num">{agent.profile.mcp_servers?.length ?? 0}</td>
                  <td class="num">{agent.profile.egress_hosts?.length ?? 0}</td>
                  <td>
                    <time dateTime={agent.updated_at}>{formatTime(agent.updated_at)}</time>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

export function Agents({ name }: { name: string | null }) {
  return name ? <AgentDetail name={name} /> : <AgentList />;
}
