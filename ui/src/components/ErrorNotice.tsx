import { ApiError } from "../api";
import { openTokenDialog } from "../auth";

/** An error as a notice (role="alert"): code, detail and request id; 401 and 403 explained. */
export function ErrorNotice({ error, title }: { error: unknown; title?: string }) {
  if (error === null || error === undefined) return null;
  const api = error instanceof ApiError ? error : null;
  const code = api?.code ?? "error";
  const detail = api ? api.detail : error instanceof Error ? error.message : String(error);
  const unauthorized = api !== null && (api.status === 401 || code === "unauthorized");
  const forbidden = api !== null && (api.status === 403 || code === "forbidden");
  return (
    <div class="notice notice-error" role="alert">
      {title && <p class="notice-title">{title}</p>}
      {unauthorized && (
        <p>
          <strong>Not signed in:</strong> the API token is missing, expired or revoked.{" "}
          <button type="button" class="link-button" onClick={openTokenDialog}>
            Enter credentials
          </button>
        </p>
      )}
      {forbidden && (
        <p>
          <strong>Not allowed:</strong> your token lacks a scope this needs. {detail}
        </p>
      )}
      <p>
        <code class="notice-code">{code}</code> {detail}
      </p>
      {api && api.errors.length > 0 && !api.errors.every((e) => detail.includes(`${e.loc.join(".")}: ${e.msg}`)) && (
        <ul class="error-list">
          {api.errors.map((problem, i) => (
            <li key={i}>
              <code>{problem.loc.join(".")}</code>: {problem.msg}
            </li>
          ))}
        </ul>
      )}
      {api?.requestId && (
        <p class="notice-meta">
          Request ID: <code>{api.requestId}</code>
        </p>
      )}
    </div>
  );
}
