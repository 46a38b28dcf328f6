// Typed API calls of the Agents, VMs and Tokens pages (`/agents`, `/jobs/{id}/transcript`,
// `/vms`, `/tokens`), built on `send` and `ApiError` of api.ts.

import { ApiError, json, send } from "./api";

const enc = encodeURIComponent;

/** A 422's field errors by dotted path, `body` and `strip` left off the front (`limits.max_steps`);
 * errors of the whole body are under "". */
export function fieldErrors(error: unknown, strip: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  if (!(error instanceof ApiError)) return out;
  for (const problem of error.errors) {
    let loc = problem.loc.map(String);
    if (loc[0] === "body") loc = loc.slice(1);
    if (strip.every((part, i) => loc[i] === part)) loc = loc.slice(strip.length);
    const key = loc.join(".");
    out[key] = out[key] ? `${out[key]} ${problem.msg}` : problem.msg;
  }
  return out;
}

/** The messages of `errors` at `key` or below it (below: prefixed with the rest of the path). */
export function errorsAt(errors: Record<string, string>, key: string): string | null {
  const found: string[] = [];
  for (const [path, msg] of Object.entries(errors)) {
    if (path === key) found.push(msg);
    else if (path.startsWith(`${key}.`)) found.push(`${path.slice(key.length + 1)}: ${msg}`);
  }
  return found.length ? found.join(" ") : null;
}

// Agents

/** The server's built-in tools (`ember.agents.toolbox.BUILTIN_TOOLS`; no route lists them). */
export const BUILTIN_TOOLS = [
  "read_file",
  "write_file",
  "list_files",
  "run_command",
  "run_python",
  "search_memory",
  "fetch_url",
] as const;

/** Tool-result codes that are denials (`ember.agents.loop.DENIED`). */
export const DENIED_CODES: ReadonlySet<string> = new Set(["policy_denied", "unknown_tool"]);

export type Isolation = "sandbox" | "vm";

export interface McpServer {
  name: string;
  command?: string | null;
  args?: string[];
  url?: string | null;
  read_only_paths?: string[];
}

export interface AgentProfile {
  name?: string;
  model: string;
  system_prompt?: string | null;
  tools?: string[];
  mcp_servers?: McpServer[];
  egress_hosts?: string[];
  isolation?: Isolation;
  limits?: Record<string, number | null>;
  sandbox?: Record<string, number | null>;
}

export interface AgentRecord {
  name: string;
  profile: AgentProfile;
  created_at: string;
  updated_at: string;
}

export interface AgentPage {
  items: AgentRecord[];
  next: string | null;
}

/** Every profile of the workspace, a page of 100 at a time (at most `max`). */
export async function listAgents(signal?: AbortSignal, max = 1000): Promise<AgentRecord[]> {
  const all: AgentRecord[] = [];
  let after: string | null = null;
  do {
    const query = new URLSearchParams({ limit: "100" });
    if (after) query.set("after", after);
    const page: AgentPage = await json<AgentPage>(`/agents?${query}`, { signal });
    all.push(...page.items);
    after = page.next;
  } while (after && all.length < max);
  return all;
}

export function getAgent(name: string, signal?: AbortSignal): Promise<AgentRecord> {
  return json<AgentRecord>(`/agents/${enc(name)}`, { signal });
}

export function createAgent(profile: AgentProfile): Promise<AgentRecord> {
  return json<AgentRecord>("/agents", { method: "POST", body: JSON.stringify(profile) });
}

export function replaceAgent(name: string, profile: AgentProfile): Promise<AgentRecord> {
  return json<AgentRecord>(`/agents/${enc(name)}`, { method: "PUT", body: JSON.stringify(profile) });
}

export async function deleteAgent(name: string): Promise<void> {
  await send(`/agents/${enc(name)}`, { method: "DELETE" });
}

export interface TranscriptStep {
  step: number;
  provider: string;
  model: string;
  finish_reason: string | null;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  cost_usd: number;
  duration_s: number;
  tool_calls: { call_id: string; name: string; ok: boolean; code: string | null; duration_s: number; truncated?: boolean }[];
}

export interface TranscriptMessage {
  role: string;
  content: string | null;
  tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[];
  tool_call_id?: string;
}

/** An agent job's stored transcript (`Transcript.to_dict`). */
export interface StoredTranscript {
  profile: string;
  model: string;
  status: string;
  answer: string | null;
  limit: string | null;
  error: { code: string; detail: string; [extra: string]: unknown } | null;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  cost_usd: number;
  duration_s: number;
  steps: TranscriptStep[];
  messages: TranscriptMessage[];
  artifacts_dropped?: { path: string; reason: string }[];
}

/** The job's transcript; null while it has none (404: not started, or not an agent job). */
export async function getTranscript(jobId: string, signal?: AbortSignal): Promise<StoredTranscript | null> {
  try {
    return await json<StoredTranscript>(`/jobs/${enc(jobId)}/transcript`, { signal });
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

// VMs

export interface VM {
  id: string;
  job_id: string | null;
  state: string;
  node: string;
  accel: string;
  vcpus: number;
  memory_mib: number;
  disk_mib: number;
  error_code: string | null;
  created_at: string;
  updated_at: string;
}

export const VM_TERMINAL: ReadonlySet<string> = new Set(["gone", "failed"]);

export async function listVMs(limit: number, signal?: AbortSignal): Promise<VM[]> {
  return (await json<{ vms: VM[] }>(`/vms?limit=${limit}`, { signal })).vms;
}

// Tokens

/** The scopes `POST /tokens` accepts (`ember.auth.scopes.Scope`). */
export const SCOPES = [
  "jobs:read",
  "jobs:write",
  "memory:read",
  "memory:write",
  "models:use",
  "agents:read",
  "agents:write",
  "agents:run",
  "vms:run",
  "admin",
  "cluster:admin",
] as const;

export interface ApiToken {
  id: string;
  name: string;
  principal: string;
  workspace: string;
  scopes: string[];
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
}

export interface CreatedToken extends ApiToken {
  /** The secret, in this answer only. */
  token: string;
}

export interface TokenDraft {
  name: string;
  principal?: string;
  scopes: string[];
  expires_at?: string;
  workspace?: string;
}

export async function listTokens(signal?: AbortSignal): Promise<ApiToken[]> {
  return (await json<{ tokens: ApiToken[] }>("/tokens", { signal })).tokens;
}

export function createToken(draft: TokenDraft): Promise<CreatedToken> {
  return json<CreatedToken>("/tokens", { method: "POST", body: JSON.stringify(draft) });
}

export function revokeToken(id: string): Promise<ApiToken> {
  return json<ApiToken>(`/tokens/${enc(id)}`, { method: "DELETE" });
}
