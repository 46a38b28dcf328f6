// The ember JSON API: typed requests and problem+json errors.

import { authHeaders } from "./auth";

export const JOB_STATES = ["queued", "running", "cancelling", "succeeded", "failed", "cancelled"] as const;
export type JobState = (typeof JOB_STATES)[number];
export const FINAL_STATES: ReadonlySet<string> = new Set(["succeeded", "failed", "cancelled"]);

export interface Job {
  id: string;
  kind: string;
  state: JobState;
  principal: string;
  request_id: string | null;
  trace_id: string | null;
  attempts: number;
  max_attempts: number;
  error_code: string | null;
  error_detail: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface JobPage {
  jobs: Job[];
  next_cursor: string | null;
}

/** A JSON schema node, as pydantic writes it; read through `schema.ts`. */
export type Schema = Record<string, unknown>;

export interface JobKind {
  name: string;
  description: string;
  scopes: string[];
  input_schema: Schema;
}

export interface Artifact {
  path: string;
  size: number;
  sha256: string;
}

export interface Span {
  span_id: string;
  parent_id: string | null;
  name: string;
  kind: string;
  service: string;
  start_ns: number;
  end_ns: number;
  duration_ms: number;
  status: "unset" | "ok" | "error";
  status_detail: string | null;
  attributes: Record<string, unknown>;
  events: Record<string, unknown>[];
  children: Span[];
}

export interface Trace {
  job_id: string;
  trace_id: string;
  spans: number;
  roots: Span[];
}

/** One failing field of a 422: `loc` (list) in the documented form, `path` (dotted) as sent today. */
export interface FieldError {
  loc: (string | number)[];
  msg: string;
  type: string;
}

/** A problem+json error, an OpenAI-style `{"error": ...}` one, or a network failure (`code`
 * `network_error`, `status` 0). */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly detail: string;
  readonly requestId: string | null;
  readonly traceId: string | null;
  readonly errors: FieldError[];

  constructor(init: {
    status: number;
    code: string;
    detail: string;
    title?: string;
    requestId?: string | null;
    traceId?: string | null;
    errors?: FieldError[];
  }) {
    super(init.detail || init.title || init.code);
    this.name = "ApiError";
    this.status = init.status;
    this.code = init.code;
    this.detail = init.detail;
    this.requestId = init.requestId ?? null;
    this.traceId = init.traceId ?? null;
    this.errors = init.errors ?? [];
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function str(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

function fieldError(raw: unknown): FieldError | null {
  if (!isRecord(raw)) return null;
  let loc: (string | number)[] = [];
  if (Array.isArray(raw.loc)) {
    loc = raw.loc.filter((p): p is string | number => typeof p === "string" || typeof p === "number");
  } else if (typeof raw.path === "string") {
    loc = raw.path.split(".").map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  }
  const msg = str(raw.msg) ?? str(raw.message) ?? "";
  return { loc, msg, type: str(raw.type) ?? "" };
}

/** The ApiError of a parsed (or unparsable, `body` null) error response. */
export function problemFrom(status: number, body: unknown, requestId: string | null = null): ApiError {
  if (!isRecord(body)) {
    return new ApiError({ status, code: `http_${status}`, detail: `The server answered ${status}.`, requestId });
  }
  if (isRecord(body.error)) {
    // The OpenAI-compatible routes (`/v1/...`) answer `{"error": {"message", "type", "code"}}`.
    const error = body.error;
    return new ApiError({
      status,
      code: str(error.code) ?? str(error.type) ?? `http_${status}`,
      detail: str(error.message) ?? "",
      requestId,
    });
  }
  const errors = Array.isArray(body.errors) ? body.errors.map(fieldError).filter((e): e is FieldError => e !== null) : [];
  return new ApiError({
    status: typeof body.status === "number" ? body.status : status,
    code: str(body.code) ?? `http_${status}`,
    detail: str(body.detail) ?? str(body.title) ?? "",
    title: str(body.title) ?? undefined,
    requestId: str(body.request_id) ?? requestId,
    traceId: str(body.trace_id),
    errors,
  });
}

/** Reads a failed response into an ApiError. */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  let body: unknown = null;
  try {
    body = JSON.parse(await response.text());
  } catch {
    body = null;
  }
  return problemFrom(response.status, body, response.headers.get("x-request-id"));
}

function networkError(error: unknown): ApiError {
  const detail = error instanceof Error ? error.message : String(error);
  return new ApiError({ status: 0, code: "network_error", detail: `Could not reach the server: ${detail}` });
}

export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}

/** A fetch with the auth header; rejects with ApiError on a network failure or a non-2xx answer. */
export async function send(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  for (const [name, value] of Object.entries(authHeaders())) headers.set(name, value);
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers });
  } catch (error) {
    if (isAbort(error)) throw error;
    throw networkError(error);
  }
  if (!response.ok) throw await errorFromResponse(response);
  return response;
}

/** A JSON request (a body, when given, is sent as JSON) and its parsed JSON answer; rejects as
 * `send` does. */
export async function json<T>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  headers.set("Accept", "application/json");
  if (init.body !== undefined && !headers.has("Content-Type")) headers.set("Content-Type", "application/json");
  const response = await send(path, { ...init, headers });
  return (await response.json()) as T;
}

const enc = encodeURIComponent;

export interface JobFilter {
  states?: readonly string[];
  kinds?: readonly string[];
  limit?: number;
  cursor?: string | null;
  /** Only `agent` jobs of this profile. */
  agent?: string;
}

export function listJobs(filter: JobFilter, signal?: AbortSignal): Promise<JobPage> {
  const query = new URLSearchParams();
  query.set("limit", String(filter.limit ?? 50));
  if (filter.cursor) query.set("cursor", filter.cursor);
  for (const state of filter.states ?? []) query.append("state", state);
  for (const kind of filter.kinds ?? []) query.append("kind", kind);
  if (filter.agent) query.set("agent", filter.agent);
  return json<JobPage>(`/jobs?${query}`, { signal });
}

export async function listKinds(signal?: AbortSignal): Promise<JobKind[]> {
  return (await json<{ kinds: JobKind[] }>("/jobs/kinds", { signal })).kinds;
}

export function submitJob(kind: string, input: Record<string, unknown>): Promise<Job> {
  return json<Job>("/jobs", { method: "POST", body: JSON.stringify({ kind, input }) });
}

export function getJob(id: string, signal?: AbortSignal): Promise<Job> {
  return json<Job>(`/jobs/${enc(id)}`, { signal });
}

export function cancelJob(id: string): Promise<Job> {
  return json<Job>(`/jobs/${enc(id)}/cancel`, { method: "POST" });
}

export async function getResult(id: string, signal?: AbortSignal): Promise<unknown> {
  return (await json<{ id: string; result: unknown }>(`/jobs/${enc(id)}/result`, { signal })).result;
}

/** A job's artifacts; a 404 (not an agent job) is an empty list. */
export async function listArtifacts(id: string, signal?: AbortSignal): Promise<Artifact[]> {
  try {
    return (await json<{ artifacts: Artifact[] }>(`/jobs/${enc(id)}/artifacts`, { signal })).artifacts;
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return [];
    throw error;
  }
}

export function artifactUrl(id: string, path: string): string {
  return `/jobs/${enc(id)}/artifacts/${path.split("/").map(enc).join("/")}`;
}

/** Downloads an artifact with the auth header and hands it to the browser as a file. */
export async function downloadArtifact(id: string, path: string): Promise<void> {
  const blob = await (await send(artifactUrl(id, path))).blob();
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = path.split("/").pop() || "artifact";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** The job's trace, or null when it was not traced or is no longer kept (404 `trace_not_found`). */
export async function getTrace(id: string, signal?: AbortSignal): Promise<Trace | null> {
  try {
    return await json<Trace>(`/jobs/${enc(id)}/trace`, { signal });
  } catch (error) {
    if (error instanceof ApiError && error.code === "trace_not_found") return null;
    throw error;
  }
}

/** Opens `GET /jobs/{id}/events?after=N` (for `events.ts`'s `follow`); resolves with any status. */
export function openJobEvents(id: string, after: number, signal: AbortSignal): Promise<Response> {
  return fetch(`/jobs/${enc(id)}/events?after=${after}`, {
    headers: { Accept: "text/event-stream", ...authHeaders() },
    cache: "no-store",
    signal,
  });
}
