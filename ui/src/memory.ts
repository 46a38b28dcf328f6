/**
 * The memory plane's API for the Memory page: collections (list, create, delete, export,
 * import), document ingest, search with explain and context packing; and the browser side of
 * an upload (reading picked files into documents, cutting them into batches).
 */

import { ApiError, json, send } from "./api";

export interface Collection {
  id: string;
  name: string;
  description: string;
  embedding_model: string | null;
  metadata: Record<string, unknown>;
  created_at: string;
}

export interface CollectionPage {
  items: Collection[];
  next: string | null;
}

export interface CollectionIn {
  name: string;
  description?: string;
  embedding_model?: string;
  metadata?: Record<string, unknown>;
}

/** The server's collection name rule. */
export const NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export const BEIR_JSONL = "application/x-beir+jsonl";

export interface DocumentIn {
  source: string;
  text?: string;
  content_base64?: string;
  media_type?: string;
  metadata?: Record<string, unknown>;
}

export type OutcomeStatus = "created" | "updated" | "unchanged" | "duplicate" | "failed";

export interface Outcome {
  source: string;
  status: OutcomeStatus;
  document_id: string | null;
  version: number | null;
  chunks: number;
  duplicate_of: string | null;
  error_code: string | null;
  error: string | null;
}

export interface IngestOut {
  collection: string;
  created: number;
  updated: number;
  skipped: number;
  failed: number;
  chunks: number;
  seconds: number;
  index_error: string | null;
  documents: Outcome[];
}

export const SEARCH_MODES = ["hybrid", "dense", "keyword"] as const;
export type SearchMode = (typeof SEARCH_MODES)[number];

export interface SearchIn {
  query: string;
  k: number;
  mode: SearchMode;
  explain: boolean;
  per_document: boolean;
  filter?: Record<string, unknown>;
  mmr_lambda?: number;
}

export interface Explanation {
  dense_rank: number | null;
  keyword_rank: number | null;
  dense_score: number | null;
  keyword_score: number | null;
  fused_score: number;
}

export interface Hit {
  chunk_id: number;
  document_id: string;
  source: string;
  version: number;
  title: string | null;
  text: string;
  char_start: number;
  char_end: number;
  score: number;
  metadata: Record<string, unknown>;
  explain?: Explanation | null;
}

export interface ContextIn {
  query: string;
  budget_tokens: number;
  k: number;
  filter?: Record<string, unknown>;
}

export interface PackedChunk {
  citation: number;
  chunk_id: number;
  document_id: string;
  source: string;
  version: number;
  char_start: number;
  char_end: number;
  tokens: number;
  score: number;
  /** The chunk's text, as the pack holds it. */
  text: string;
}

export interface DroppedChunk {
  chunk_id: number;
  source: string;
  reason: "near_duplicate" | "over_budget";
  tokens: number;
  duplicate_of: number | null;
}

export interface ContextOut {
  text: string;
  budget_tokens: number;
  tokens_used: number;
  tokenizer: string;
  chunks: PackedChunk[];
  dropped: DroppedChunk[];
}

const enc = encodeURIComponent;
const base = (name: string): string => `/collections/${enc(name)}`;

export function listCollections(after: string | null, limit: number, signal?: AbortSignal): Promise<CollectionPage> {
  const query = new URLSearchParams({ limit: String(limit) });
  if (after) query.set("after", after);
  return json<CollectionPage>(`/collections?${query}`, { signal });
}

export function getCollection(name: string, signal?: AbortSignal): Promise<Collection> {
  return json<Collection>(base(name), { signal });
}

export function createCollection(body: CollectionIn): Promise<Collection> {
  return json<Collection>("/collections", { method: "POST", body: JSON.stringify(body) });
}

export async function deleteCollection(name: string): Promise<void> {
  await send(base(name), { method: "DELETE" });
}

/** `GET /collections/{name}/export` (JSON Lines) handed to the browser as `<name>.jsonl`. */
export async function exportCollection(name: string): Promise<void> {
  const response = await send(`${base(name)}/export`, { headers: { Accept: "application/x-ndjson" } });
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = `${name}.jsonl`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** `POST /collections/{name}/import` with an export's JSON Lines; the answer's counts. */
export function importCollection(name: string, file: Blob): Promise<Record<string, unknown>> {
  return json<Record<string, unknown>>(`${base(name)}/import`, {
    method: "POST",
    body: file,
    headers: { "Content-Type": "application/x-ndjson" },
  });
}

/** The collection an export names in its header line (null when it cannot be read). */
export async function exportedName(file: Blob): Promise<string | null> {
  try {
    const head = await file.slice(0, 256 * 1024).text();
    const header = JSON.parse(head.split("\n", 1)[0] ?? "") as { collection?: { name?: unknown } };
    const name = header.collection?.name;
    return typeof name === "string" && NAME_PATTERN.test(name) ? name : null;
  } catch {
    return null;
  }
}

export function ingest(name: string, documents: DocumentIn[], signal?: AbortSignal): Promise<IngestOut> {
  return json<IngestOut>(`${base(name)}/documents`, { method: "POST", body: JSON.stringify({ documents }), signal });
}

export async function search(name: string, body: SearchIn, signal?: AbortSignal): Promise<Hit[]> {
  return (await json<{ hits: Hit[] }>(`${base(name)}/search`, { method: "POST", body: JSON.stringify(body), signal })).hits;
}

export function contextPack(name: string, body: ContextIn, signal?: AbortSignal): Promise<ContextOut> {
  return json<ContextOut>(`${base(name)}/context`, { method: "POST", body: JSON.stringify(body), signal });
}

/** A JSON object typed into a form: `value` (null when empty) or the reason it is not one. */
export function parseObject(text: string): { value: Record<string, unknown> | null; error?: string } {
  if (text.trim() === "") return { value: null };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { value: null, error: `Not JSON: ${error instanceof Error ? error.message : String(error)}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { value: null, error: 'Must be a JSON object, such as {"lang": "en"}.' };
  }
  return { value: value as Record<string, unknown> };
}

/**
 * The messages of a failed request that belong to form fields: field errors by location,
 * `codes` (error code to field, e.g. `collection_exists` to `name`), and a `validation_failed`
 * without field errors whose detail starts with a field's name.
 */
export function fieldMessages(
  error: unknown,
  fields: readonly string[],
  codes: Record<string, string> = {},
): Record<string, string> {
  const out: Record<string, string> = {};
  if (!(error instanceof ApiError)) return out;
  for (const problem of error.errors) {
    const field = problem.loc.find((part): part is string => typeof part === "string" && fields.includes(part));
    if (field && !out[field]) out[field] = problem.msg;
  }
  const coded = codes[error.code];
  if (coded && !out[coded]) out[coded] = error.detail;
  if (error.code === "validation_failed" && error.errors.length === 0) {
    const field = fields.find((f) => error.detail.startsWith(`${f} `) || error.detail.startsWith(`${f}:`));
    if (field && !out[field]) out[field] = error.detail;
  }
  return out;
}

/** Picked files in upload order, cut into batches of at most `maxFiles` files and about
 * `maxBytes` bytes (a larger file goes alone). */
export function batches(files: readonly File[], maxFiles: number, maxBytes: number): File[][] {
  const out: File[][] = [];
  let current: File[] = [];
  let size = 0;
  for (const file of files) {
    if (current.length > 0 && (current.length >= maxFiles || size + file.size > maxBytes)) {
      out.push(current);
      current = [];
      size = 0;
    }
    current.push(file);
    size += file.size;
  }
  if (current.length > 0) out.push(current);
  return out;
}

function base64Of(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      resolve(url.slice(url.indexOf(",") + 1));
    };
    reader.onerror = () => reject(reader.error ?? new Error("the file could not be read"));
    reader.readAsDataURL(blob);
  });
}

/** A picked file as a document (source: its name): UTF-8 goes as `text`; anything else as
 * `content_base64`, so the server decodes it (UTF-16, Windows-1252, PDF) or names it binary.
 * A `.jsonl` file is sent as a BEIR corpus (one document per line). */
export async function readDocument(file: File, metadata: Record<string, unknown> | null): Promise<DocumentIn> {
  const document: DocumentIn = { source: file.name };
  if (/\.jsonl$/i.test(file.name)) document.media_type = BEIR_JSONL;
  if (metadata) document.metadata = metadata;
  try {
    document.text = new TextDecoder("utf-8", { fatal: true }).decode(await file.arrayBuffer());
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    document.content_base64 = await base64Of(file);
  }
  return document;
}
