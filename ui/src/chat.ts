/**
 * What the Chat page asks of the server, UI-independent: the OpenAI-compatible chat stream
 * (`POST /v1/chat/completions`, Server-Sent Events of `chat.completion.chunk` ending in
 * `data: [DONE]`), the model list (`GET /v1/models`), the per-request routing overrides
 * (`X-Ember-Provider`, `X-Ember-Fallback`), the collections, and the `ask` job's input and
 * result (each cited passage with its text).
 *
 * The `/v1` routes answer errors in OpenAI's shape (`{"error": {"message", "type", "param",
 * "code"}}`, `code` being ember's code), which `send` in api.ts reads like problem+json.
 */

import { ApiError, isAbort, json, problemFrom, send } from "./api";
import { SseParser } from "./events";

export type Role = "system" | "user" | "assistant";

export interface ChatMessage {
  role: Role;
  content: string;
}

export interface ModelEntry {
  id: string;
  /** The provider that lists it, or `alias` for a router alias. */
  ownedBy: string;
}

/** Routing overrides for one request: `provider` null is automatic. */
export interface Overrides {
  provider: string | null;
  fallback: boolean;
  /** Sampling temperature (0: always the likeliest token); null: the model's default. */
  temperature: number | null;
  /** The most tokens of answer; null: the server's default. */
  maxTokens: number | null;
}

/** The sampling settings of `overrides` as request fields (`temperature`, `max_tokens`). */
export function samplingFields(overrides: Overrides): Record<string, number> {
  const fields: Record<string, number> = {};
  if (overrides.temperature !== null) fields.temperature = overrides.temperature;
  if (overrides.maxTokens !== null) fields.max_tokens = overrides.maxTokens;
  return fields;
}

/** Who answered, as the response headers say (`X-Ember-Provider`, `X-Ember-Model`). */
export interface ServedBy {
  provider: string | null;
  model: string | null;
}

export interface Usage {
  prompt: number;
  completion: number;
  total: number;
}

export interface ChatOutcome {
  finishReason: string | null;
  usage: Usage | null;
  /** The `model` the chunks carry (the name as asked). */
  model: string | null;
}

export interface ChatHandlers {
  /** The stream started (its first delta is on the way); headers name who answers. */
  onStart?(servedBy: ServedBy, requestId: string | null): void;
  /** One piece of the answer's text. */
  onText(text: string): void;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const str = (value: unknown): string | null => (typeof value === "string" ? value : null);
const num = (value: unknown): number | null => (typeof value === "number" && Number.isFinite(value) ? value : null);

/** The request headers for `overrides`: nothing for automatic routing with fallback. */
export function overrideHeaders(overrides: Overrides): Record<string, string> {
  const headers: Record<string, string> = {};
  if (overrides.provider) headers["X-Ember-Provider"] = overrides.provider;
  if (!overrides.fallback) headers["X-Ember-Fallback"] = "false";
  return headers;
}

/** `GET /v1/models`: every name a request may use. */
export async function listModels(signal?: AbortSignal): Promise<ModelEntry[]> {
  const response = await send("/v1/models", { headers: { Accept: "application/json" }, signal });
  const body: unknown = await response.json();
  const data = isRecord(body) && Array.isArray(body.data) ? body.data : [];
  const models: ModelEntry[] = [];
  for (const item of data) {
    if (!isRecord(item)) continue;
    const id = str(item.id);
    if (id) models.push({ id, ownedBy: str(item.owned_by) ?? "" });
  }
  return models;
}

/** The provider names the models show (aliases left out), sorted. */
export function providersOf(models: readonly ModelEntry[]): string[] {
  const names = new Set<string>();
  for (const model of models) if (model.ownedBy && model.ownedBy !== "alias") names.add(model.ownedBy);
  return [...names].sort();
}

/** The model to preselect: `default` when listed, else the first alias, else the first. */
export function defaultModel(models: readonly ModelEntry[]): string {
  return (
    models.find((m) => m.id === "default")?.id ?? models.find((m) => m.ownedBy === "alias")?.id ?? models[0]?.id ?? ""
  );
}

export interface ChunkStep {
  text: string;
  finishReason: string | null;
  usage: Usage | null;
  model: string | null;
  error: ApiError | null;
}

/** One `data:` payload of the stream (not `[DONE]`) read into what it says. */
export function readChunk(data: string, requestId: string | null = null): ChunkStep {
  const step: ChunkStep = { text: "", finishReason: null, usage: null, model: null, error: null };
  let body: unknown;
  try {
    body = JSON.parse(data);
  } catch {
    step.error = new ApiError({ status: 0, code: "bad_stream", detail: "The answer stream sent an unreadable event.", requestId });
    return step;
  }
  if (!isRecord(body)) return step;
  if (isRecord(body.error)) {
    step.error = problemFrom(0, body, requestId);
    return step;
  }
  step.model = str(body.model);
  const choice = Array.isArray(body.choices) ? body.choices[0] : undefined;
  if (isRecord(choice)) {
    if (isRecord(choice.delta)) step.text = str(choice.delta.content) ?? "";
    step.finishReason = str(choice.finish_reason);
  }
  if (isRecord(body.usage)) {
    step.usage = {
      prompt: num(body.usage.prompt_tokens) ?? 0,
      completion: num(body.usage.completion_tokens) ?? 0,
      total: num(body.usage.total_tokens) ?? 0,
    };
  }
  return step;
}

/**
 * Streams a chat answer: `onText` gets each piece as it comes; resolves at `data: [DONE]`.
 * Rejects with ApiError (an error before the stream, an error event in it, a stream that ends
 * early or a dropped connection) or the AbortError of `signal`.
 */
export async function streamChat(
  request: { model: string; messages: readonly ChatMessage[]; overrides: Overrides },
  handlers: ChatHandlers,
  signal: AbortSignal,
): Promise<ChatOutcome> {
  const body = {
    model: request.model,
    messages: request.messages,
    stream: true,
    stream_options: { include_usage: true },
    ...samplingFields(request.overrides),
  };
  const response = await send("/v1/chat/completions", {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      Accept: "text/event-stream",
      ...overrideHeaders(request.overrides),
    },
    body: JSON.stringify(body),
    cache: "no-store",
    signal,
  });
  const requestId = response.headers.get("x-request-id");
  handlers.onStart?.(
    { provider: response.headers.get("x-ember-provider"), model: response.headers.get("x-ember-model") },
    requestId,
  );
  const outcome: ChatOutcome = { finishReason: null, usage: null, model: null };
  if (!response.body) {
    throw new ApiError({ status: 0, code: "bad_stream", detail: "The answer came without a body.", requestId });
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  try {
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        if (isAbort(error) || signal.aborted) throw new DOMException("Aborted", "AbortError");
        const detail = error instanceof Error ? error.message : String(error);
        throw new ApiError({ status: 0, code: "network_error", detail: `The connection dropped during the answer: ${detail}` });
      }
      if (chunk.done) {
        throw new ApiError({
          status: 0,
          code: "stream_incomplete",
          detail: "The answer stream ended before it was complete.",
          requestId,
        });
      }
      for (const message of parser.push(decoder.decode(chunk.value, { stream: true }))) {
        if (message.data === "[DONE]") return outcome;
        const step = readChunk(message.data, requestId);
        if (step.error) throw step.error;
        outcome.model = step.model ?? outcome.model;
        outcome.finishReason = step.finishReason ?? outcome.finishReason;
        outcome.usage = step.usage ?? outcome.usage;
        if (step.text) handlers.onText(step.text);
      }
    }
  } finally {
    void reader.cancel().catch(() => undefined);
  }
}

// Collections and chunks (problem+json routes).

export interface Collection {
  name: string;
  description: string;
}

/** `GET /collections`, every page (at most 10,000 collections). */
export async function listCollections(signal?: AbortSignal): Promise<Collection[]> {
  const found: Collection[] = [];
  let after: string | null = null;
  for (let page = 0; page < 10; page += 1) {
    const query = new URLSearchParams({ limit: "1000" });
    if (after) query.set("after", after);
    const body = await json<{ items: Collection[]; next: string | null }>(`/collections?${query}`, { signal });
    found.push(...body.items.map((c) => ({ name: c.name, description: c.description ?? "" })));
    after = body.next;
    if (!after) break;
  }
  return found;
}

// The `ask` job.

/** A packed passage of an ask: `citation` is its `[n]`. */
export interface Citation {
  citation: number;
  chunk_id: number;
  document_id: string;
  source: string;
  version: number;
  char_start: number;
  char_end: number;
  score: number;
  /** The passage as the prompt carried it (absent in results of older embers). */
  text?: string;
}

export interface AskResult {
  answer: string;
  citations: Citation[];
  /** Every passage the prompt carried. */
  context: Citation[];
  retrieved: number | null;
  provider: string | null;
  model: string | null;
  usage: Usage | null;
}

/** The `input` of an `ask` job (`POST /jobs`, kind `ask`). */
export function askInput(
  collection: string,
  question: string,
  model: string,
  overrides: Overrides,
): Record<string, unknown> {
  const input: Record<string, unknown> = { collection, question, fallback: overrides.fallback, ...samplingFields(overrides) };
  if (model) input.model = model;
  if (overrides.provider) input.provider = overrides.provider;
  return input;
}

function citationOf(raw: unknown): Citation | null {
  if (!isRecord(raw)) return null;
  const citation = num(raw.citation);
  const chunk = num(raw.chunk_id);
  if (citation === null || chunk === null) return null;
  return {
    citation,
    chunk_id: chunk,
    document_id: str(raw.document_id) ?? "",
    source: str(raw.source) ?? "",
    version: num(raw.version) ?? 0,
    char_start: num(raw.char_start) ?? 0,
    char_end: num(raw.char_end) ?? 0,
    score: num(raw.score) ?? 0,
    ...(typeof raw.text === "string" ? { text: raw.text } : {}),
  };
}

const citations = (raw: unknown): Citation[] =>
  Array.isArray(raw) ? raw.map(citationOf).filter((c): c is Citation => c !== null) : [];

/** An `ask` job's result, read defensively; null when it is not one. */
export function parseAskResult(value: unknown): AskResult | null {
  if (!isRecord(value) || typeof value.answer !== "string") return null;
  const usage = isRecord(value.usage)
    ? {
        prompt: num(value.usage.prompt_tokens) ?? 0,
        completion: num(value.usage.completion_tokens) ?? 0,
        total: num(value.usage.total_tokens) ?? 0,
      }
    : null;
  return {
    answer: value.answer,
    citations: citations(value.citations),
    context: citations(value.context),
    retrieved: num(value.retrieved),
    provider: str(value.provider),
    model: str(value.model),
    usage,
  };
}
