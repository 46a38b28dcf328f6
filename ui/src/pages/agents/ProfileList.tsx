// The list of the workspace's agent profiles (`/agents`) and the form that creates one.

import { useEffect, useRef, useState } from "preact/hooks";
import { isAbort } from "../../api";
import { listAgents, type AgentRecord } from "../../admin";
import { ErrorNotice } from "../../components/ErrorNotice";
import { formatTime } from "../../format";
import { useTokenVersion } from "../../hooks";
import { navigate } from "../../router";
import { ProfileForm } from "./ProfileForm";
import { Tags } from "./ProfileView";

const agentHref = (name: string): string => `#/agents/${encodeURIComponent(name)}`;

export function AgentList() {
  const [agents, setAgents] = useState<AgentRecord[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [creating, setCreating] = useState(false);
  const tokenVersion = useTokenVersion();
  const newButton = useRef<HTMLButtonElement>(null);

  useEffect(() => {
    const controller = new AbortController();
    setError(null);
    listAgents(controller.signal)
      .then(setAgents)
      .catch((caught) => {
        if (!isAbort(caught)) setError(caught);
      });
    return () => controller.abort();
  }, [tokenVersion]);

  return (
    <section aria-labelledby="agents-title">
      <div class="page-head">
        <h1 id="agents-title" tabIndex={-1}>
          Agents
        </h1>
        <button ref={newButton} type="button" class="button primary" aria-expanded={creating} aria-controls="new-profile" onClick={() => setCreating((c) => !c)}>
          New profile
        </button>
      </div>

      <div id="new-profile">
        {creating && (
          <section class="panel">
            <ProfileForm
              record={null}
              onSaved={(saved) => navigate(agentHref(saved.name))}
              onCancel={() => {
                setCreating(false);
                newButton.current?.focus();
              }}
            />
          </section>
        )}
      </div>

      <ErrorNotice error={error} title="Could not load the profiles" />
      {agents === null && error === null && (
        <p class="muted" role="status">
          Loading profiles…
        </p>
      )}
      {agents !== null && agents.length === 0 && (
        <div class="empty">
          <p>No agent profiles in this workspace yet.</p>
          <p>A profile says which model an agent uses, which tools and hosts it may reach, and its limits.</p>
        </div>
      )}
      {agents !== null && agents.length > 0 && (
        <div class="table-scroll">
          <table class="table">
            <caption class="sr-only">Agent profiles</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Model</th>
                <th scope="col">Isolation</th>
                <th scope="col">Tools</th>
                <th scope="col" class="num">
                  MCP servers
                </th>
                <th scope="col" class="num">
                  Egress hosts
                </th>
                <th scope="col">Updated</th>
              </tr>
            </thead>
            <tbody>
              {agents.map((agent) => (
                <tr key={agent.name} data-testid="agent-row" data-agent={agent.name}>
                  <th scope="row">
                    <a href={agentHref(agent.name)}>{agent.name}</a>
                  </th>
                  <td>
                    <code>{agent.profile.model}</code>
                  </td>
                  <td>{agent.profile.isolation ?? "sandbox"}</td>
                  <td>
                    <Tags items={agent.profile.tools} none="none" label={`Tools of ${agent.name}`} />
                  </td>
                  <td class="num">{agent.profile.mcp_servers?.length ?? 0}</td>
                  <td class="num">{agent.profile.egress_hosts?.length ?? 0}</td>
                  <td>
                    <time dateTime={agent.updated_at}>{formatTime(agent.updated_at)}</time>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
