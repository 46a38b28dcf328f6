// The runs of an agent profile: the form that starts one (an `agent` job) and the table of its
// recent runs.

import { useRef, useState } from "preact/hooks";
import { submitJob, type Job } from "../../api";
import { errorsAt, fieldErrors } from "../../admin";
import { ErrorNotice } from "../../components/ErrorNotice";
import { StateBadge } from "../../components/StateBadge";
import { formatTime, shortId } from "../../format";
import { announce } from "../../notices";
import { jobHref } from "../../router";
import { FieldError, focusInvalid } from "../../components/FieldError";

export function RunForm({ agent, onStarted }: { agent: string; onStarted(job: Job): void }) {
  const [task, setTask] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const form = useRef<HTMLFormElement>(null);

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    if (busy) return;
    if (!task.trim()) {
      setErrors({ task: "Say what the agent is to do." });
      setError(null);
      focusInvalid();
      return;
    }
    setBusy(true);
    setError(null);
    setErrors({});
    try {
      const job = await submitJob("agent", { agent, task });
      announce(`Run ${shortId(job.id)} of ${agent} started.`);
      setTask("");
      onStarted(job);
    } catch (caught) {
      setError(caught);
      setErrors(fieldErrors(caught, ["input"]));
      focusInvalid();
    } finally {
      setBusy(false);
    }
  };

  const taskError = errorsAt(errors, "task");
  return (
    <form ref={form} class="form" onSubmit={(e) => void submit(e)} noValidate aria-labelledby="run-form-title">
      <h2 id="run-form-title">Start a run</h2>
      <div class="field">
        <label for="run-task">
          Task <span class="required" aria-hidden="true">*</span>
        </label>
        <textarea
          id="run-task"
          rows={3}
          required
          maxLength={100_000}
          value={task}
          aria-invalid={taskError ? true : undefined}
          aria-describedby={taskError ? "run-task-help run-task-error" : "run-task-help"}
          onInput={(e) => setTask(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
              e.preventDefault();
              form.current?.requestSubmit();
            }
          }}
        />
        <p class="help muted" id="run-task-help">
          Submitted as an <code>agent</code> job (needs <code>agents:run</code> and <code>models:use</code>). Ctrl+Enter
          starts it.
        </p>
        <FieldError id="run-task-error" text={taskError} />
      </div>
      <ErrorNotice error={error} title="The run was not started" />
      <div class="actions">
        <button type="submit" class="button primary" disabled={busy} aria-busy={busy}>
          Start run
        </button>
      </div>
    </form>
  );
}

export function RunsTable({ runs, selected, onSelect }: { runs: Job[]; selected: string | null; onSelect(id: string): void }) {
  return (
    <div class="table-scroll">
      <table class="table">
        <caption class="sr-only">Recent runs</caption>
        <thead>
          <tr>
            <th scope="col">Job</th>
            <th scope="col">State</th>
            <th scope="col">Created</th>
            <th scope="col">Finished</th>
            <th scope="col">Error</th>
            <th scope="col">
              <span class="sr-only">Transcript</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {runs.map((job) => (
            <tr key={job.id} data-testid="agent-run-row" data-job-id={job.id} class={selected === job.id ? "selected" : undefined}>
              <th scope="row">
                <a href={jobHref(job.id)} class="mono" title={job.id}>
                  {shortId(job.id)}
                </a>
              </th>
              <td>
                <StateBadge state={job.state} />
              </td>
              <td>
                <time dateTime={job.created_at}>{formatTime(job.created_at)}</time>
              </td>
              <td>{job.finished_at ? <time dateTime={job.finished_at}>{formatTime(job.finished_at)}</time> : "—"}</td>
              <td>{job.error_code ? <code>{job.error_code}</code> : "—"}</td>
              <td>
                <button
                  type="button"
                  class="button"
                  aria-pressed={selected === job.id}
                  aria-controls="run-transcript"
                  aria-label={`Transcript of run ${job.id}`}
                  onClick={() => onSelect(job.id)}
                >
                  Transcript
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
