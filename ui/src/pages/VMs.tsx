// VMs: the running and recent VMs (`GET /vms`, vms:run), refreshed every 2 s while the tab is
// visible. `/vms` carries no console text; a VM's console is read from its job's events (the
// `vm` kind streams the guest's serial console as `log` events `"console"`).

import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, errorFromResponse, FINAL_STATES, getJob, isAbort, openJobEvents } from "../api";
import { listVMs, VM_TERMINAL, type VM } from "../admin";
import { ErrorNotice } from "../components/ErrorNotice";
import { follow, FollowError, type FollowStatus } from "../events";
import { formatBytes, formatTime, shortId } from "../format";
import { usePolling, useTokenVersion } from "../hooks";
import { applyEvent, emptyModel } from "../jobStream";
import { jobHref } from "../router";
import "./Admin.css";

const REFRESH_MS = 2000;
const LIMIT = 50;
const CONSOLE_LINES = 2000;

const mib = (n: number): string => formatBytes(n * 1024 * 1024);

function retryable(error: unknown): boolean {
  return !(error instanceof ApiError) || error.status === 0 || error.status === 429 || error.status >= 500;
}

const STATUS_TEXT: Record<FollowStatus, string> = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  ended: "complete",
  failed: "unavailable",
  stopped: "",
};

/** The console lines of the VM's job, followed from its event stream. */
function Console({ vm, onClose }: { vm: VM; onClose(): void }) {
  const [lines, setLines] = useState<string[]>([]);
  const [status, setStatus] = useState<FollowStatus>("connecting");
  const [error, setError] = useState<unknown>(null);
  const tokenVersion = useTokenVersion();
  const heading = useRef<HTMLHeadingElement>(null);
  const jobId = vm.job_id;

  useEffect(() => heading.current?.focus(), [vm.id]);

  useEffect(() => {
    if (!jobId) return;
    const model = emptyModel();
    let frame = 0;
    setLines([]);
    setError(null);
    const follower = follow({
      open: (after, signal) => openJobEvents(jobId, after, signal),
      onEvent: (event) => {
        applyEvent(model, event);
        if (frame === 0) {
          frame = requestAnimationFrame(() => {
            frame = 0;
            const found = model.logs.filter((line) => line.message === "console").map((line) => String(line.fields.line ?? ""));
            setLines(found.slice(-CONSOLE_LINES));
          });
        }
      },
      onStatus: (next, caught) => {
        setStatus(next);
        if (next === "failed") {
          if (caught instanceof FollowError) void errorFromResponse(caught.response).then(setError);
          else setError(caught);
        }
      },
      isOver: async () => FINAL_STATES.has((await getJob(jobId)).state),
    });
    return () => {
      follower.stop();
      cancelAnimationFrame(frame);
    };
  }, [jobId, tokenVersion]);

  const over = status === "ended" || status === "failed";
  return (
    <section class="panel" aria-labelledby="console-title">
      <div class="panel-head">
        <h2 id="console-title" ref={heading} tabIndex={-1}>
          Console of VM <span class="mono">{shortId(vm.id)}</span>
        </h2>
        {jobId && (
          <span class={`stream-status stream-${status}`} role="status">
            {STATUS_TEXT[status]}
          </span>
        )}
        <button type="button" class="button quiet" onClick={onClose}>
          Close console
        </button>
      </div>
      <ErrorNotice error={error} title="Could not follow the job's events" />
      {jobId ? (
        <p class="help muted">
          The guest's serial console as streamed in the events of job <a href={jobHref(jobId)}>{shortId(jobId)}</a>
          {lines.length >= CONSOLE_LINES ? ` (last ${CONSOLE_LINES} lines)` : ""}.
        </p>
      ) : null}
      <pre class="output console" data-testid="vm-console" tabIndex={0} aria-live="polite" aria-label={`Console of VM ${vm.id}`}>
        {lines.join("\n")}
      </pre>
      {lines.length === 0 && (
        <p class="muted">
          {!jobId
            ? "No console text: /vms returns none, and this VM ran without a job whose events could hold it."
            : over
              ? "No console lines in this job's events (only vm jobs stream the guest's console; VM sandboxes of agent runs do not)."
              : "No console lines yet."}
        </p>
      )}
    </section>
  );
}

function VMTable({ vms, label, selected, onSelect }: { vms: VM[]; label: string; selected: string | null; onSelect(id: string): void }) {
  return (
    <div class="table-scroll">
      <table class="table">
        <caption class="sr-only">{label}</caption>
        <thead>
          <tr>
            <th scope="col">VM</th>
            <th scope="col">State</th>
            <th scope="col">Accel</th>
            <th scope="col" class="num">
              vCPUs
            </th>
            <th scope="col" class="num">
              Memory
            </th>
            <th scope="col" class="num">
              Disk
            </th>
            <th scope="col">Node</th>
            <th scope="col">Job</th>
            <th scope="col">Error</th>
            <th scope="col">Created</th>
            <th scope="col">Updated</th>
            <th scope="col">
              <span class="sr-only">Console</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {vms.map((vm) => (
            <tr key={vm.id} data-testid="vm-row" data-vm-id={vm.id} class={selected === vm.id ? "selected" : undefined}>
              <th scope="row" class="mono" title={vm.id}>
                {shortId(vm.id)}
              </th>
              <td>
                <span class={`badge badge-vm-${vm.state}`}>{vm.state}</span>
              </td>
              <td>{vm.accel}</td>
              <td class="num">{vm.vcpus}</td>
              <td class="num">{mib(vm.memory_mib)}</td>
              <td class="num">{mib(vm.disk_mib)}</td>
              <td>{vm.node}</td>
              <td>
                {vm.job_id ? (
                  <a href={jobHref(vm.job_id)} class="mono" title={vm.job_id}>
                    {shortId(vm.job_id)}
                  </a>
                ) : (
                  <span class="muted">no job</span>
                )}
              </td>
              <td>{vm.error_code ? <code>{vm.error_code}</code> : "—"}</td>
              <td>
                <time dateTime={vm.created_at}>{formatTime(vm.created_at)}</time>
              </td>
              <td>
                <time dateTime={vm.updated_at}>{formatTime(vm.updated_at)}</time>
              </td>
              <td>
                <button
                  type="button"
                  class="button"
                  aria-pressed={selected === vm.id}
                  aria-controls="vm-console-panel"
                  aria-label={`Console of VM ${vm.id}`}
                  onClick={() => onSelect(vm.id)}
                >
                  Console
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function VMs() {
  const [vms, setVms] = useState<VM[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [attempt, setAttempt] = useState(0);
  const [selected, setSelected] = useState<string | null>(null);
  const [shown, setShown] = useState<VM | null>(null);
  const tokenVersion = useTokenVersion();

  usePolling(
    async (signal) => {
      try {
        const found = await listVMs(LIMIT, signal);
        if (signal.aborted) return false;
        setVms(found);
        setError(null);
        return true;
      } catch (caught) {
        if (signal.aborted || isAbort(caught)) return false;
        setError(caught);
        return retryable(caught);
      }
    },
    REFRESH_MS,
    [tokenVersion, attempt],
  );

  // The console keeps the VM it was opened for, even once the VM leaves the newest 50.
  useEffect(() => {
    if (selected === null) setShown(null);
    else {
      const found = vms?.find((vm) => vm.id === selected);
      if (found) setShown(found);
    }
  }, [selected, vms]);

  const running = vms?.filter((vm) => !VM_TERMINAL.has(vm.state)) ?? [];
  const recent = vms?.filter((vm) => VM_TERMINAL.has(vm.state)) ?? [];
  const select = (id: string): void => setSelected((current) => (current === id ? null : id));

  return (
    <section aria-labelledby="vms-title">
      <div class="page-head">
        <h1 id="vms-title" tabIndex={-1}>
          VMs
        </h1>
      </div>

      {error !== null && (
        <div class="stack">
          <ErrorNotice error={error} title={vms === null ? "Could not load the VMs" : "Could not refresh the VMs"} />
          {!retryable(error) && (
            <button type="button" class="button" onClick={() => setAttempt((a) => a + 1)}>
              Retry
            </button>
          )}
        </div>
      )}

      {vms === null && error === null && (
        <p class="muted" role="status">
          Loading VMs…
        </p>
      )}

      {vms !== null && (
        <p class="muted">
          The newest {LIMIT} VMs. Live: refreshed every 2 seconds while this tab is visible. The API reports no
          per-VM timeout.
        </p>
      )}

      {vms !== null && vms.length === 0 && (
        <div class="empty">
          <p>No VMs yet.</p>
          <p>
            A <code>vm</code> job, or an agent profile with <code>isolation: vm</code>, starts one.
          </p>
        </div>
      )}

      {vms !== null && vms.length > 0 && (
        <>
          <section class="panel" aria-labelledby="vms-running">
            <h2 id="vms-running">Running ({running.length})</h2>
            {running.length === 0 ? <p class="muted">No VM is running now.</p> : <VMTable vms={running} label="Running VMs" selected={selected} onSelect={select} />}
          </section>
          <section class="panel" aria-labelledby="vms-recent">
            <h2 id="vms-recent">Recent ({recent.length})</h2>
            {recent.length === 0 ? <p class="muted">No VM has ended yet.</p> : <VMTable vms={recent} label="Recent VMs" selected={selected} onSelect={select} />}
          </section>
        </>
      )}

      <div id="vm-console-panel">
        {shown && (
          <Console
            key={shown.id}
            vm={shown}
            onClose={() => {
              setSelected(null);
              requestAnimationFrame(() => document.querySelector<HTMLElement>(`tr[data-vm-id="${CSS.escape(shown.id)}"] button`)?.focus());
            }}
          />
        )}
      </div>
    </section>
  );
}
