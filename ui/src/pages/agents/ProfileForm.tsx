// The profile create/edit form of the Agents page: name, model, system prompt, tools, MCP
// servers, egress hosts, isolation, and the run and sandbox limits.

import { useEffect, useRef, useState } from "preact/hooks";
import { BUILTIN_TOOLS, createAgent, errorsAt, fieldErrors, replaceAgent, type AgentRecord } from "../../admin";
import { ErrorNotice } from "../../components/ErrorNotice";
import { formatBytes } from "../../format";
import { announce } from "../../notices";
import { FieldError, focusInvalid } from "../../components/FieldError";
import {
  bodyOf,
  draftOf,
  LIMIT_FIELDS,
  placed,
  SANDBOX_FIELDS,
  serverDraft,
  type Draft,
  type NumField,
  type ServerDraft,
} from "./profileDraft";

export function ProfileForm({ record, onSaved, onCancel }: { record: AgentRecord | null; onSaved(record: AgentRecord): void; onCancel(): void }) {
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
