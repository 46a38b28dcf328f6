// The read-only view of an agent profile: its facts, tools, MCP servers, egress hosts and
// limits (and the tag list the profile list uses too).

import type { AgentRecord } from "../../admin";
import { formatBytes, formatTime } from "../../format";
import { LIMIT_FIELDS, SANDBOX_FIELDS, type NumField } from "./profileDraft";

export function Tags({ items, none, label }: { items: readonly string[] | undefined; none: string; label: string }) {
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

export function ProfileView({ record }: { record: AgentRecord }) {
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
