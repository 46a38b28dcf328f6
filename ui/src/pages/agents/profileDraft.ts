// The profile form's model: the number fields of a profile's limits (shown by the profile view
// too), the form's draft of a profile, and the profile body checked and built from it.

import { BUILTIN_TOOLS, type AgentProfile, type AgentRecord, type Isolation, type McpServer } from "../../admin";

const NAME_RULE = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export interface NumField {
  key: string;
  label: string;
  int?: boolean;
  nullable?: boolean;
  bytes?: boolean;
}

export const LIMIT_FIELDS: NumField[] = [
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

export const SANDBOX_FIELDS: NumField[] = [
  { key: "wall_s", label: "Wall clock per command (seconds)" },
  { key: "cpu_s", label: "CPU seconds per process", int: true },
  { key: "memory_bytes", label: "Memory (bytes)", int: true, bytes: true },
  { key: "file_size_bytes", label: "Largest file (bytes)", int: true, bytes: true },
  { key: "open_files", label: "Open files", int: true },
  { key: "processes", label: "Processes and threads", int: true },
  { key: "output_bytes", label: "Output kept per stream (bytes)", int: true, bytes: true },
  { key: "cpus", label: "CPUs (cores)" },
];

export interface ServerDraft {
  key: number;
  name: string;
  transport: "command" | "url";
  command: string;
  args: string;
  url: string;
  paths: string;
}

export interface Draft {
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

export function serverDraft(server?: McpServer): ServerDraft {
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

export function draftOf(record: AgentRecord | null): Draft {
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
export function bodyOf(draft: Draft, base: AgentProfile | null, creating: boolean): { body: AgentProfile; errors: Record<string, string> } {
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
export function placed(errors: Record<string, string>): Record<string, string> {
  const whole = errors[""];
  if (!whole) return errors;
  const out = { ...errors };
  const field = /egress_hosts/.test(whole) ? "egress_hosts" : /MCP server/.test(whole) ? "mcp_servers" : /`tools`/.test(whole) ? "tools" : null;
  if (field) out[field] = out[field] ? `${out[field]} ${whole}` : whole;
  return out;
}
