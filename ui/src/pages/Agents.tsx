// Agents: the workspace's agent profiles (`/agents`), one profile's view and edit form, its
// runs (`agent` jobs) and a run's transcript, followed live from the job's events or read
// from `/jobs/{id}/transcript` once the run is over.
// The pieces live in ./agents/; this page shows the profile list or one profile with its runs.

import { useEffect, useRef, useState } from "preact/hooks";
import { isAbort, listJobs, type Job } from "../api";
import { deleteAgent, getAgent, type AgentRecord } from "../admin";
import { ErrorNotice } from "../components/ErrorNotice";
import { usePolling, useTokenVersion } from "../hooks";
import { announce } from "../notices";
import { hrefWith, navigate, replaceHash } from "../router";
import { ProfileForm } from "./agents/ProfileForm";
import { AgentList } from "./agents/ProfileList";
import { ProfileView } from "./agents/ProfileView";
import { RunForm, RunsTable } from "./agents/RunList";
import { RunTranscript } from "./agents/Transcript";
import "./Admin.css";

export { runFromStream, runFromTranscript, type CallView, type RunEnd, type RunView, type StepView } from "./agents/runView";

const RUNS_REFRESH_MS = 4000;

function AgentDetail({ name }: { name: string }) {
  const [record, setRecord] = useState<AgentRecord | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [editing, setEditing] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [deleteError, setDeleteError] = useState<unknown>(null);
  const [runs, setRuns] = useState<Job[] | null>(null);
  const [runsError, setRunsError] = useState<unknown>(null);
  const [runsVersion, setRunsVersion] = useState(0);
  const [runId, setRunId] = useState<string | null>(() => new URLSearchParams(location.hash.split("?")[1] ?? "").get("run"));
  const [focusRun, setFocusRun] = useState(false);
  const tokenVersion = useTokenVersion();
  const editButton = useRef<HTMLButtonElement>(null);
  const deleteButton = useRef<HTMLButtonElement>(null);
  const confirmButton = useRef<HTMLButtonElement>(null);

  useEffect(() => replaceHash(hrefWith(`agents/${encodeURIComponent(name)}`, { run: runId })), [runId]);

  useEffect(() => {
    const controller = new AbortController();
    setLoadError(null);
    getAgent(name, controller.signal)
      .then(setRecord)
      .catch((caught) => {
        if (!isAbort(caught)) setLoadError(caught);
      });
    return () => controller.abort();
  }, [name, tokenVersion]);

  useEffect(() => {
    if (confirming) confirmButton.current?.focus();
  }, [confirming]);

  // The agent jobs of this profile, refreshed while the tab is visible.
  usePolling(
    async (signal) => {
      try {
        const page = await listJobs({ agent: name, limit: 50 }, signal);
        if (signal.aborted) return false;
        setRuns(page.jobs);
        setRunsError(null);
      } catch (caught) {
        if (signal.aborted || isAbort(caught)) return false;
        setRunsError(caught);
      }
      return true;
    },
    RUNS_REFRESH_MS,
    [name, tokenVersion, runsVersion],
  );

  const remove = async (): Promise<void> => {
    setDeleting(true);
    setDeleteError(null);
    try {
      await deleteAgent(name);
      announce(`Profile ${name} deleted.`);
      navigate("#/agents");
    } catch (caught) {
      setDeleteError(caught);
    } finally {
      setDeleting(false);
    }
  };

  const select = (id: string): void => {
    setFocusRun(true);
    setRunId((current) => (current === id ? null : id));
  };

  return (
    <section aria-labelledby="agent-title">
      <div class="page-head">
        <h1 id="agent-title" tabIndex={-1}>
          Agent <span class="mono">{name}</span>
        </h1>
        <a href="#/agents">All profiles</a>
      </div>

      <ErrorNotice error={loadError} title="Could not load the profile" />
      {record === null && loadError === null && (
        <p class="muted" role="status">
          Loading profile…
        </p>
      )}

      {record && (
        <section class="panel" aria-labelledby={editing ? "profile-form-title" : "profile-title"}>
          {editing ? (
            <ProfileForm
              record={record}
              onSaved={(saved) => {
                setRecord(saved);
                setEditing(false);
                requestAnimationFrame(() => editButton.current?.focus());
              }}
              onCancel={() => {
                setEditing(false);
                requestAnimationFrame(() => editButton.current?.focus());
              }}
            />
          ) : (
            <>
              <div class="panel-head">
                <h2 id="profile-title">Profile</h2>
                <div class="inline">
                  <button ref={editButton} type="button" class="button" onClick={() => setEditing(true)}>
                    Edit
                  </button>
                  {!confirming && (
                    <button ref={deleteButton} type="button" class="button" onClick={() => setConfirming(true)}>
                      Delete
                    </button>
                  )}
                </div>
              </div>
              {confirming && (
                <div class="confirm notice" role="group" aria-label={`Delete profile ${name}?`}>
                  <span>Delete profile {name}? Runs keep their transcripts.</span>
                  <button ref={confirmButton} type="button" class="button danger" disabled={deleting} aria-busy={deleting} onClick={() => void remove()}>
                    Delete {name}
                  </button>
                  <button
                    type="button"
                    class="button quiet"
                    onClick={() => {
                      setConfirming(false);
                      setDeleteError(null);
                      requestAnimationFrame(() => deleteButton.current?.focus());
                    }}
                  >
                    Keep
                  </button>
                </div>
              )}
              <ErrorNotice error={deleteError} title="Could not delete the profile" />
              <ProfileView record={record} />
            </>
          )}
        </section>
      )}

      {record && (
        <section class="panel">
          <RunForm
            agent={name}
            onStarted={(job) => {
              setRuns((prev) => [job, ...(prev ?? []).filter((j) => j.id !== job.id)]);
              setFocusRun(false);
              setRunId(job.id);
              setRunsVersion((v) => v + 1);
            }}
          />
        </section>
      )}

      <section class="panel" aria-labelledby="runs-title">
        <h2 id="runs-title">Recent runs</h2>
        <ErrorNotice error={runsError} title="Could not list the runs" />
        {runs === null && runsError === null && (
          <p class="muted" role="status">
            Loading runs…
          </p>
        )}
        {runs !== null && runs.length === 0 && <p class="muted">No runs of this profile yet.</p>}
        {runs !== null && runs.length > 0 && <RunsTable runs={runs} selected={runId} onSelect={select} />}
      </section>

      {runId && (
        <RunTranscript
          key={runId}
          jobId={runId}
          focus={focusRun}
          onClose={() => {
            const id = runId;
            setRunId(null);
            requestAnimationFrame(() => document.querySelector<HTMLElement>(`tr[data-job-id="${CSS.escape(id)}"] button`)?.focus());
          }}
        />
      )}
    </section>
  );
}

export function Agents({ name }: { name: string | null }) {
  return name ? <AgentDetail name={name} /> : <AgentList />;
}
