// Tokens and workspaces: the API tokens the caller may manage (`GET /tokens`, admin scope;
// every workspace for cluster:admin), grouped by workspace; create one (its secret shown
// once) and revoke one after a confirm step.

import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, isAbort } from "../api";
import { createToken, errorsAt, fieldErrors, listTokens, revokeToken, SCOPES, type ApiToken, type CreatedToken } from "../admin";
import { ErrorNotice } from "../components/ErrorNotice";
import { FieldError, focusInvalid } from "../components/FieldError";
import { formatTime, shortId } from "../format";
import { useTokenVersion } from "../hooks";
import { announce } from "../notices";
import "./Admin.css";

const forbidden = (error: unknown): boolean => error instanceof ApiError && (error.status === 403 || error.code === "forbidden");

function Notice({ error, title }: { error: unknown; title: string }) {
  const scope = error instanceof ApiError && error.detail.includes("cluster:admin") ? "cluster:admin" : "admin";
  return <ErrorNotice error={error} title={forbidden(error) ? `This needs the ${scope} scope` : title} />;
}

function status(token: ApiToken, now: number): "revoked" | "expired" | "active" {
  if (token.revoked_at) return "revoked";
  if (token.expires_at && new Date(token.expires_at).getTime() <= now) return "expired";
  return "active";
}

function byWorkspace(tokens: readonly ApiToken[]): [string, ApiToken[]][] {
  const groups = new Map<string, ApiToken[]>();
  for (const token of tokens) groups.set(token.workspace, [...(groups.get(token.workspace) ?? []), token]);
  return [...groups.entries()].sort(([a], [b]) => a.localeCompare(b));
}

function Secret({ created, onDone }: { created: CreatedToken; onDone(): void }) {
  const heading = useRef<HTMLHeadingElement>(null);
  const value = useRef<HTMLElement>(null);
  const [copied, setCopied] = useState<string>("");
  useEffect(() => heading.current?.focus(), []);
  const select = (): void => {
    const selection = window.getSelection();
    if (!value.current || !selection) return;
    const range = document.createRange();
    range.selectNodeContents(value.current);
    selection.removeAllRanges();
    selection.addRange(range);
  };
  const copy = async (): Promise<void> => {
    try {
      await navigator.clipboard.writeText(created.token);
      setCopied("Copied to the clipboard.");
    } catch {
      select();
      setCopied("Could not copy: the secret is selected, copy it with Ctrl+C (⌘C).");
    }
  };
  return (
    <section class="panel secret-panel" aria-labelledby="secret-title">
      <h2 id="secret-title" ref={heading} tabIndex={-1}>
        New token “{created.name}”
      </h2>
      <p class="secret-warning" id="secret-warning">
        <strong>Shown once:</strong> copy the secret now. ember keeps only its hash; it cannot be shown again.
      </p>
      <p class="help" id="secret-label">
        Secret of token <span class="mono">{shortId(created.id)}</span> in workspace <code>{created.workspace}</code>, scopes{" "}
        {created.scopes.join(", ")}:
      </p>
      <div class="inline">
        <code
          ref={value}
          class="secret-value"
          data-testid="token-secret"
          tabIndex={0}
          aria-labelledby="secret-label"
          aria-describedby="secret-warning"
          onFocus={select}
        >
          {created.token}
        </code>
        <button type="button" class="button primary" onClick={() => void copy()}>
          Copy secret
        </button>
      </div>
      <p class="help" role="status" aria-live="polite">
        {copied}
      </p>
      <div class="actions">
        <button type="button" class="button" onClick={onDone}>
          I have copied it — hide the secret
        </button>
      </div>
    </section>
  );
}

function CreateForm({ workspaces, onCreated, onCancel }: { workspaces: string[]; onCreated(token: CreatedToken): void; onCancel(): void }) {
  const [name, setName] = useState("");
  const [principal, setPrincipal] = useState("");
  const [workspace, setWorkspace] = useState("");
  const [scopes, setScopes] = useState<string[]>(["jobs:read"]);
  const [expires, setExpires] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const first = useRef<HTMLInputElement>(null);
  useEffect(() => first.current?.focus(), []);

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    const local: Record<string, string> = {};
    if (!name.trim()) local.name = "Give the token a name.";
    if (scopes.length === 0) local.scopes = "Pick at least one scope.";
    let expiresAt: string | undefined;
    if (expires) {
      const date = new Date(expires);
      if (Number.isNaN(date.getTime())) local.expires_at = "Not a valid time.";
      else expiresAt = date.toISOString();
    }
    setErrors(local);
    if (Object.keys(local).length > 0) {
      setError(null);
      focusInvalid();
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const created = await createToken({
        name: name.trim(),
        scopes,
        ...(principal.trim() ? { principal: principal.trim() } : {}),
        ...(workspace.trim() ? { workspace: workspace.trim() } : {}),
        ...(expiresAt ? { expires_at: expiresAt } : {}),
      });
      announce(`Token ${created.name} created.`);
      onCreated(created);
    } catch (caught) {
      setError(caught);
      setErrors(fieldErrors(caught));
      focusInvalid();
    } finally {
      setBusy(false);
    }
  };

  const err = (key: string): string | null => errorsAt(errors, key);
  const described = (key: string, help?: string): string | undefined =>
    [help, err(key) ? `tf-${key}-error` : undefined].filter(Boolean).join(" ") || undefined;
  const errorLine = (key: string) => <FieldError id={`tf-${key}-error`} text={err(key)} />;

  return (
    <form class="form panel" onSubmit={(e) => void submit(e)} noValidate aria-labelledby="new-token-title">
      <h2 id="new-token-title">New token</h2>
      <div class="field">
        <label for="tf-name">
          Name <span class="required" aria-hidden="true">*</span>
        </label>
        <input
          ref={first}
          id="tf-name"
          type="text"
          required
          maxLength={128}
          value={name}
          aria-invalid={err("name") ? true : undefined}
          aria-describedby={described("name")}
          onInput={(e) => setName(e.currentTarget.value)}
        />
        {errorLine("name")}
      </div>
      <div class="field">
        <label for="tf-principal">Acts as (principal)</label>
        <input
          id="tf-principal"
          type="text"
          maxLength={128}
          placeholder="same as the name"
          value={principal}
          aria-invalid={err("principal") ? true : undefined}
          aria-describedby={described("principal", "tf-principal-help")}
          onInput={(e) => setPrincipal(e.currentTarget.value)}
        />
        <p class="help muted" id="tf-principal-help">
          Empty: the token's name.
        </p>
        {errorLine("principal")}
      </div>
      <div class="field">
        <label for="tf-workspace">Workspace</label>
        <input
          id="tf-workspace"
          type="text"
          maxLength={64}
          list="tf-workspaces"
          placeholder="yours"
          value={workspace}
          aria-invalid={err("workspace") ? true : undefined}
          aria-describedby={described("workspace", "tf-workspace-help")}
          onInput={(e) => setWorkspace(e.currentTarget.value)}
        />
        <datalist id="tf-workspaces">
          {workspaces.map((w) => (
            <option key={w} value={w} />
          ))}
        </datalist>
        <p class="help muted" id="tf-workspace-help">
          Empty: your own workspace. Another workspace needs <code>cluster:admin</code>.
        </p>
        {errorLine("workspace")}
      </div>
      <div class="field">
        <fieldset
          class="checks"
          aria-invalid={err("scopes") ? true : undefined}
          aria-describedby={described("scopes", "tf-scopes-help")}
        >
          <legend>
            Scopes <span class="required" aria-hidden="true">*</span>
          </legend>
          {SCOPES.map((scope) => (
            <label key={scope}>
              <input
                type="checkbox"
                name="scope"
                value={scope}
                checked={scopes.includes(scope)}
                onChange={(e) => {
                  const on = e.currentTarget.checked;
                  setScopes((prev) => (on ? [...prev, scope] : prev.filter((s) => s !== scope)));
                }}
              />
              <code>{scope}</code>
            </label>
          ))}
        </fieldset>
        <p class="help muted" id="tf-scopes-help">
          <code>admin</code> grants every other scope in its workspace; <code>cluster:admin</code> every scope in every
          workspace (only a cluster:admin may grant it).
        </p>
        {errorLine("scopes")}
      </div>
      <div class="field">
        <label for="tf-expires">Expires</label>
        <input
          id="tf-expires"
          type="datetime-local"
          value={expires}
          aria-invalid={err("expires_at") ? true : undefined}
          aria-describedby={described("expires_at", "tf-expires-help")}
          onInput={(e) => setExpires(e.currentTarget.value)}
        />
        <p class="help muted" id="tf-expires-help">
          Your local time. Empty: never expires.
        </p>
        {errorLine("expires_at")}
      </div>
      <Notice error={error} title="The token was not created" />
      <div class="actions">
        <button type="submit" class="button primary" disabled={busy} aria-busy={busy}>
          Create token
        </button>
        <button type="button" class="button quiet" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}

function TokenRow({ token, now, onRevoked }: { token: ApiToken; now: number; onRevoked(token: ApiToken): void }) {
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const confirmButton = useRef<HTMLButtonElement>(null);
  const revokeButton = useRef<HTMLButtonElement>(null);
  const state = status(token, now);

  useEffect(() => {
    if (confirming) confirmButton.current?.focus();
  }, [confirming]);

  const revoke = async (): Promise<void> => {
    setBusy(true);
    setError(null);
    try {
      const updated = await revokeToken(token.id);
      announce(`Token ${token.name} revoked.`);
      setConfirming(false);
      onRevoked(updated);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  const cancel = (): void => {
    setConfirming(false);
    setError(null);
    requestAnimationFrame(() => revokeButton.current?.focus());
  };

  return (
    <tr data-testid="token-row" data-token-id={token.id} class={state === "active" ? undefined : "inactive"}>
      <th scope="row">
        {token.name}
        {token.principal !== token.name && (
          <span class="muted sub">
            acts as <code>{token.principal}</code>
          </span>
        )}
      </th>
      <td class="mono" title={token.id}>
        {shortId(token.id)}
      </td>
      <td>
        <ul class="tags" aria-label="Scopes">
          {token.scopes.map((scope) => (
            <li key={scope}>
              <code>{scope}</code>
            </li>
          ))}
        </ul>
      </td>
      <td>
        <time dateTime={token.created_at}>{formatTime(token.created_at)}</time>
      </td>
      <td>{token.expires_at ? <time dateTime={token.expires_at}>{formatTime(token.expires_at)}</time> : "never"}</td>
      <td>{token.last_used_at ? <time dateTime={token.last_used_at}>{formatTime(token.last_used_at)}</time> : "never"}</td>
      <td>
        <span class={`badge badge-${state}`}>{state}</span>
        {token.revoked_at && (
          <span class="sub muted">
            <time dateTime={token.revoked_at}>{formatTime(token.revoked_at)}</time>
          </span>
        )}
      </td>
      <td>
        {!token.revoked_at &&
          (confirming ? (
            <div class="confirm" role="group" aria-label={`Revoke token ${token.name}?`}>
              <span>Revoke? It stops working at once.</span>
              <button ref={confirmButton} type="button" class="button danger" disabled={busy} aria-busy={busy} onClick={() => void revoke()}>
                Revoke {token.name}
              </button>
              <button type="button" class="button quiet" onClick={cancel}>
                Keep
              </button>
            </div>
          ) : (
            <button ref={revokeButton} type="button" class="button" aria-label={`Revoke token ${token.name}`} onClick={() => setConfirming(true)}>
              Revoke
            </button>
          ))}
        {error !== null && <Notice error={error} title="Could not revoke" />}
      </td>
    </tr>
  );
}

export function Tokens() {
  const [tokens, setTokens] = useState<ApiToken[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<CreatedToken | null>(null);
  const [attempt, setAttempt] = useState(0);
  const tokenVersion = useTokenVersion();
  const newButton = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    const controller = new AbortController();
    setError(null);
    listTokens(controller.signal)
      .then(setTokens)
      .catch((caught) => {
        if (!isAbort(caught)) setError(caught);
      });
    return () => controller.abort();
  }, [tokenVersion, attempt]);

  // A new token drops the secret shown under the old one.
  useEffect(() => setCreated(null), [tokenVersion]);

  const now = Date.now();
  const groups = tokens ? byWorkspace(tokens) : [];
  const denied = tokens === null && forbidden(error);

  return (
    <section aria-labelledby="tokens-title">
      <div class="page-head">
        <h1 id="tokens-title" tabIndex={-1}>
          Tokens and workspaces
        </h1>
        <div class="actions">
          <button type="button" class="button" onClick={() => setAttempt((a) => a + 1)}>
            Reload
          </button>
          {!denied && (
            <button
              ref={newButton}
              type="button"
              class="button primary"
              aria-expanded={creating}
              aria-controls="new-token"
              onClick={() => setCreating((c) => !c)}
            >
              New token
            </button>
          )}
        </div>
      </div>

      {created && (
        <Secret
          created={created}
          onDone={() => {
            setCreated(null);
            newButton.current?.focus();
          }}
        />
      )}

      <div id="new-token">
        {creating && (
          <CreateForm
            workspaces={groups.map(([w]) => w)}
            onCreated={(token) => {
              setCreating(false);
              setCreated(token);
              const { token: _secret, ...row } = token;
              setTokens((prev) => [row, ...(prev ?? []).filter((t) => t.id !== token.id)]);
            }}
            onCancel={() => {
              setCreating(false);
              newButton.current?.focus();
            }}
          />
        )}
      </div>

      {error !== null && <Notice error={error} title={tokens === null ? "Could not load the tokens" : "Could not reload the tokens"} />}

      {tokens === null && error === null && (
        <p class="muted" role="status">
          Loading tokens…
        </p>
      )}

      {tokens !== null && tokens.length === 0 && (
        <div class="empty">
          <p>No tokens in your workspace.</p>
        </div>
      )}

      {groups.map(([workspace, list]) => (
        <section key={workspace} class="panel" aria-labelledby={`ws-${workspace}`}>
          <h2 id={`ws-${workspace}`}>
            Workspace <code>{workspace}</code>{" "}
            <span class="muted count">
              {list.length} {list.length === 1 ? "token" : "tokens"}, {list.filter((t) => status(t, now) === "active").length} active
            </span>
          </h2>
          <div class="table-scroll">
            <table class="table">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">ID</th>
                  <th scope="col">Scopes</th>
                  <th scope="col">Created</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Last used</th>
                  <th scope="col">Status</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.map((token) => (
                  <TokenRow
                    key={token.id}
                    token={token}
                    now={now}
                    onRevoked={(updated) => setTokens((prev) => (prev ?? []).map((t) => (t.id === updated.id ? updated : t)))}
                  />
                ))}
              </tbody>
            </table>
          </div>
        </section>
      ))}
    </section>
  );
}
