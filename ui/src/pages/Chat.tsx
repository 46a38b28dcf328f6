/**
 * The Chat page: a conversation with a model over `POST /v1/chat/completions` (streamed), or
 * questions to a memory collection as `ask` jobs (streamed from the job's events, then their
 * citations, each opening its chunk). Mode, model, provider override, fallback and collection
 * live in the route's query (`#/chat?mode=ask&model=...&provider=...&fallback=off&collection=...`).
 */

import { useEffect, useRef, useState } from "preact/hooks";
import {
  ApiError,
  cancelJob,
  errorFromResponse,
  FINAL_STATES,
  getJob,
  getResult,
  isAbort,
  openJobEvents,
  submitJob,
  type Job,
} from "../api";
import {
  askInput,
  defaultModel,
  listCollections,
  listModels,
  parseAskResult,
  providersOf,
  streamChat,
  type AskResult,
  type ChatMessage,
  type Citation,
  type Collection,
  type ModelEntry,
  type Overrides,
  type ServedBy,
  type Usage,
} from "../chat";
import { ErrorNotice } from "../components/ErrorNotice";
import { follow, FollowError, type Follower, type FollowStatus } from "../events";
import { shortId } from "../format";
import { useTokenVersion } from "../hooks";
import { applyEvent, emptyModel } from "../jobStream";
import { announce } from "../notices";
import { hrefWith, jobHref, replaceHash } from "../router";
import "./Chat.css";

type Mode = "chat" | "ask";
type TurnStatus = "pending" | "streaming" | "done" | "stopped" | "failed";

interface UserTurn {
  id: number;
  role: "user";
  text: string;
  /** The collection an ask went to. */
  collection?: string;
}

interface AnswerTurn {
  id: number;
  role: "assistant";
  text: string;
  status: TurnStatus;
  error: unknown;
  servedBy: ServedBy | null;
  usage: Usage | null;
  /** Ask turns only. */
  ask?: AskState;
}

interface AskState {
  collection: string;
  question: string;
  jobId: string | null;
  follow: FollowStatus | null;
  note: string | null;
  stopping: boolean;
  result: AskResult | null;
  opened: number | null;
}

type Turn = UserTurn | AnswerTurn;

type Running =
  | { kind: "chat"; controller: AbortController }
  | { kind: "ask"; turn: AnswerTurn; follower: Follower | null; cancelled: boolean };

let nextId = 1;

function answerTurn(ask?: AskState): AnswerTurn {
  return { id: nextId++, role: "assistant", text: "", status: "pending", error: null, servedBy: null, usage: null, ask };
}

/** The chat history the API is sent: user turns and answers that have text. */
function history(turns: readonly Turn[]): ChatMessage[] {
  const messages: ChatMessage[] = [];
  for (const turn of turns) {
    if (turn.role === "user") messages.push({ role: "user", content: turn.text });
    else if (turn.text) messages.push({ role: "assistant", content: turn.text });
  }
  return messages;
}

function jobError(job: Job | null, stream: { code: string; detail: string } | null): ApiError {
  return new ApiError({
    status: 0,
    code: job?.error_code ?? stream?.code ?? "job_failed",
    detail: job?.error_detail ?? stream?.detail ?? "The ask job failed.",
    requestId: job?.request_id ?? null,
  });
}

function ServedByLine({ turn }: { turn: AnswerTurn }) {
  const served = turn.servedBy;
  if (!served?.provider && !served?.model && !turn.usage) return null;
  return (
    <p class="chat-meta">
      {(served?.provider || served?.model) && (
        <>
          Answered by{" "}
          <span class="mono">{[served.provider, served.model].filter(Boolean).join(" · ")}</span>
        </>
      )}
      {turn.usage && (
        <span class="chat-usage">
          {" "}
          {turn.usage.prompt} prompt + {turn.usage.completion} answer tokens
        </span>
      )}
    </p>
  );
}

function ChunkView({ citation }: { citation: Citation }) {
  return (
    <div class="citation-chunk">
      <dl class="facts">
        <dt>Source</dt>
        <dd class="mono">{citation.source || "—"}</dd>
        <dt>Document</dt>
        <dd>
          <span class="mono">{citation.document_id}</span> (version {citation.version})
        </dd>
        <dt>Characters</dt>
        <dd>
          {citation.char_start}–{citation.char_end}
        </dd>
        <dt>Score</dt>
        <dd>{citation.score.toFixed(3)}</dd>
      </dl>
      {citation.text ? (
        <blockquote class="citation-text" data-testid="citation-source" tabIndex={0}>
          {citation.text}
        </blockquote>
      ) : (
        <p class="muted">This answer was kept without its passages' text.</p>
      )}
    </div>
  );
}

function Citations({ turn, onOpen }: { turn: AnswerTurn; onOpen(citation: Citation): void }) {
  const ask = turn.ask;
  const result = ask?.result;
  if (!ask || !result) return null;
  const opened = result.citations.find((c) => c.citation === ask.opened) ?? null;
  return (
    <div class="citations">
      <h3 id={`cites-${turn.id}`}>Citations</h3>
      {result.citations.length === 0 ? (
        <p class="muted">
          The answer cites no passage
          {result.retrieved !== null && ` (${result.retrieved} retrieved, ${result.context.length} in the prompt)`}.
        </p>
      ) : (
        <ul class="citation-list" aria-labelledby={`cites-${turn.id}`}>
          {result.citations.map((citation) => {
            const open = ask.opened === citation.citation;
            return (
              <li key={citation.citation}>
                <button
                  type="button"
                  class="button citation-button"
                  data-testid="ask-citation"
                  aria-expanded={open}
                  aria-controls={`chunk-${turn.id}`}
                  onClick={() => onOpen(citation)}
                >
                  <span class="citation-number">[{citation.citation}]</span>{" "}
                  <span class="citation-source">{citation.source || citation.document_id}</span>
                </button>
              </li>
            );
          })}
        </ul>
      )}
      <div id={`chunk-${turn.id}`} role="region" aria-label="Cited passage" hidden={opened === null}>
        {opened && <ChunkView citation={opened} />}
      </div>
    </div>
  );
}

const FOLLOW_TEXT: Partial<Record<FollowStatus, string>> = {
  connecting: "connecting…",
  reconnecting: "reconnecting…",
};

function TurnView({ turn, last, onOpen }: { turn: Turn; last: boolean; onOpen(turn: AnswerTurn, c: Citation): void }) {
  if (turn.role === "user") {
    return (
      <li class="chat-turn chat-turn-user" data-testid="chat-turn">
        <p class="chat-role">
          You{turn.collection && <span class="muted"> asked {turn.collection}</span>}
        </p>
        <div class="chat-text">{turn.text}</div>
      </li>
    );
  }
  const ask = turn.ask;
  const waiting = turn.status === "pending" || (turn.status === "streaming" && turn.text === "");
  return (
    <li class={`chat-turn chat-turn-assistant chat-${turn.status}`} data-testid="chat-turn" aria-busy={waiting}>
      <p class="chat-role">
        {ask ? "Answer" : "Assistant"}
        {ask?.jobId && (
          <>
            {" "}
            <a class="chat-job" href={jobHref(ask.jobId)}>
              job <span class="mono">{shortId(ask.jobId)}</span>
            </a>
          </>
        )}
        {ask?.follow && FOLLOW_TEXT[ask.follow] && (
          <span class={`stream-status stream-${ask.follow}`}> {FOLLOW_TEXT[ask.follow]}</span>
        )}
      </p>
      <div class="chat-text" data-testid={last ? "chat-answer" : undefined}>
        {turn.text}
      </div>
      {waiting && <p class="muted chat-waiting">{ask?.note ?? (ask ? "Submitting…" : "Thinking…")}</p>}
      {turn.status === "stopped" && <p class="muted">Stopped.</p>}
      {turn.status === "failed" && <ErrorNotice error={turn.error} title="The answer failed" />}
      <ServedByLine turn={turn} />
      <Citations turn={turn} onOpen={(c) => onOpen(turn, c)} />
    </li>
  );
}

/** A number field's value, or null when it is empty or not a number. */
function numberOrNull(text: string): number | null {
  if (text.trim() === "") return null;
  const value = Number(text);
  return Number.isFinite(value) ? value : null;
}

export function Chat({ params }: { params: URLSearchParams }) {
  const [mode, setMode] = useState<Mode>(params.get("mode") === "ask" ? "ask" : "chat");
  const [model, setModel] = useState(params.get("model") ?? "");
  const [provider, setProvider] = useState(params.get("provider") ?? "");
  const [fallback, setFallback] = useState(params.get("fallback") !== "off");
  const [collection, setCollection] = useState(params.get("collection") ?? "");
  const [temperature, setTemperature] = useState(params.get("temperature") ?? "");
  const [maxTokens, setMaxTokens] = useState(params.get("max_tokens") ?? "");

  const [models, setModels] = useState<ModelEntry[] | null>(null);
  const [modelsError, setModelsError] = useState<unknown>(null);
  const [collections, setCollections] = useState<Collection[] | null>(null);
  const [collectionsError, setCollectionsError] = useState<unknown>(null);

  const [input, setInput] = useState("");
  const [busy, setBusy] = useState(false);
  const [stopError, setStopError] = useState<unknown>(null);
  const [, setTick] = useState(0);

  const chatTurns = useRef<Turn[]>([]);
  const askTurns = useRef<Turn[]>([]);
  const running = useRef<Running | null>(null);
  const frame = useRef(0);
  const logRef = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const textarea = useRef<HTMLTextAreaElement>(null);
  const tokenVersion = useTokenVersion();

  const render = (): void => {
    if (frame.current === 0) {
      frame.current = requestAnimationFrame(() => {
        frame.current = 0;
        setTick((t) => t + 1);
      });
    }
  };

  useEffect(() => {
    replaceHash(
      hrefWith("chat", {
        mode: mode === "ask" ? "ask" : null,
        model,
        provider,
        fallback: fallback ? null : "off",
        collection,
        temperature,
        max_tokens: maxTokens,
      }),
    );
  }, [mode, model, provider, fallback, collection, temperature, maxTokens]);

  useEffect(() => {
    const controller = new AbortController();
    setModelsError(null);
    listModels(controller.signal)
      .then((found) => {
        setModels(found);
        setModel((current) => current || defaultModel(found));
      })
      .catch((caught) => {
        if (!isAbort(caught)) setModelsError(caught);
      });
    return () => controller.abort();
  }, [tokenVersion]);

  const needCollections = mode === "ask";
  useEffect(() => {
    if (!needCollections) return;
    const controller = new AbortController();
    setCollectionsError(null);
    listCollections(controller.signal)
      .then((found) => {
        setCollections(found);
        setCollection((current) => current || (found[0]?.name ?? ""));
      })
      .catch((caught) => {
        if (!isAbort(caught)) setCollectionsError(caught);
      });
    return () => controller.abort();
  }, [needCollections, tokenVersion]);

  // Leaving the page stops streaming here (an ask job goes on; its page shows it).
  useEffect(
    () => () => {
      const run = running.current;
      if (run?.kind === "chat") run.controller.abort();
      if (run?.kind === "ask") run.follower?.stop();
      running.current = null;
      cancelAnimationFrame(frame.current);
    },
    [],
  );

  const turns = mode === "ask" ? askTurns.current : chatTurns.current;

  // Keep the newest text in view unless the reader scrolled up.
  useEffect(() => {
    const log = logRef.current;
    if (log && stick.current) log.scrollTop = log.scrollHeight;
  });

  const overrides = (): Overrides => ({
    provider: provider || null,
    fallback,
    temperature: numberOrNull(temperature),
    maxTokens: numberOrNull(maxTokens),
  });

  const finished = (): void => {
    running.current = null;
    setBusy(false);
    render();
  };

  const sendChat = async (text: string): Promise<void> => {
    const list = chatTurns.current;
    const user: UserTurn = { id: nextId++, role: "user", text };
    const answer = answerTurn();
    const messages = history([...list, user]);
    chatTurns.current = [...list, user, answer];
    const controller = new AbortController();
    running.current = { kind: "chat", controller };
    setBusy(true);
    render();
    try {
      const outcome = await streamChat(
        { model, messages, overrides: overrides() },
        {
          onStart: (servedBy) => {
            answer.servedBy = servedBy;
            answer.status = "streaming";
            render();
          },
          onText: (piece) => {
            answer.text += piece;
            render();
          },
        },
        controller.signal,
      );
      answer.status = "done";
      answer.usage = outcome.usage;
      if (!answer.servedBy?.model && outcome.model) answer.servedBy = { provider: answer.servedBy?.provider ?? null, model: outcome.model };
    } catch (caught) {
      if (isAbort(caught)) {
        answer.status = "stopped";
        announce("Answer stopped.");
      } else {
        answer.status = "failed";
        answer.error = caught;
      }
    } finally {
      finished();
    }
  };

  const settleAsk = async (turn: AnswerTurn, state: string | null, streamed: ReturnType<typeof emptyModel>): Promise<void> => {
    const ask = turn.ask;
    if (!ask?.jobId) return;
    let job: Job | null = null;
    try {
      job = await getJob(ask.jobId);
      state = job.state;
    } catch {
      job = null;
    }
    if (state === "succeeded") {
      let value = streamed.result?.value;
      for (let tries = 3; value === undefined && tries > 0; tries -= 1) {
        try {
          value = await getResult(ask.jobId);
        } catch (caught) {
          if (caught instanceof ApiError && caught.code === "job_not_finished") {
            await new Promise((resolve) => setTimeout(resolve, 1000));
          } else {
            turn.status = "failed";
            turn.error = caught;
            return;
          }
        }
      }
      const result = parseAskResult(value);
      ask.result = result;
      if (result) {
        turn.text = result.answer;
        turn.servedBy = { provider: result.provider, model: result.model };
        turn.usage = result.usage;
      }
      turn.status = "done";
    } else if (state === "cancelled") {
      turn.status = "stopped";
    } else {
      turn.status = "failed";
      turn.error = jobError(job, streamed.error);
    }
  };

  const sendAsk = async (question: string): Promise<void> => {
    const target = collection;
    const ask: AskState = {
      collection: target,
      question,
      jobId: null,
      follow: null,
      note: null,
      stopping: false,
      result: null,
      opened: null,
    };
    const user: UserTurn = { id: nextId++, role: "user", text: question, collection: target };
    const answer = answerTurn(ask);
    askTurns.current = [...askTurns.current, user, answer];
    const run: Running = { kind: "ask", turn: answer, follower: null, cancelled: false };
    running.current = run;
    setBusy(true);
    render();
    let job: Job;
    try {
      job = await submitJob("ask", askInput(target, question, model, overrides()));
    } catch (caught) {
      answer.status = "failed";
      answer.error = caught;
      finished();
      return;
    }
    ask.jobId = job.id;
    if (run.cancelled || running.current !== run) {
      if (run.cancelled) void cancelJob(job.id).catch(() => undefined);
      answer.status = "stopped";
      if (running.current === run) finished();
      return;
    }
    answer.status = "streaming";
    render();
    const streamed = emptyModel();
    const done = (): void => {
      if (running.current !== run) return;
      void settleAsk(answer, streamed.state, streamed).finally(finished);
    };
    run.follower = follow({
      open: (after, signal) => openJobEvents(job.id, after, signal),
      onEvent: (event) => {
        applyEvent(streamed, event);
        answer.text = streamed.output;
        const log = streamed.logs[streamed.logs.length - 1];
        if (log) ask.note = log.message;
        render();
      },
      onStatus: (status, error) => {
        ask.follow = status;
        if (status === "ended") done();
        if (status === "failed") {
          const settle = (problem: unknown): void => {
            if (running.current !== run) return;
            answer.status = "failed";
            answer.error = problem;
            finished();
          };
          if (error instanceof FollowError) void errorFromResponse(error.response).then(settle);
          else settle(error);
        }
        render();
      },
      isOver: async () => FINAL_STATES.has((await getJob(job.id)).state),
    });
  };

  const submit = (): void => {
    const text = input.trim();
    if (busy || !text || !model) return;
    if (mode === "ask" && !collection) return;
    setInput("");
    setStopError(null);
    stick.current = true;
    if (mode === "ask") void sendAsk(text);
    else void sendChat(text);
  };

  const stop = async (): Promise<void> => {
    const run = running.current;
    if (!run) return;
    textarea.current?.focus();
    if (run.kind === "chat") {
      run.controller.abort();
      return;
    }
    const ask = run.turn.ask;
    if (!ask) return;
    run.cancelled = true;
    if (!ask.jobId) return;
    ask.stopping = true;
    render();
    try {
      await cancelJob(ask.jobId);
      announce("Stopping the answer.");
    } catch (caught) {
      ask.stopping = false;
      setStopError(caught);
    }
  };

  const clear = (): void => {
    if (mode === "ask") askTurns.current = [];
    else chatTurns.current = [];
    render();
    textarea.current?.focus();
  };

  const openCitation = (turn: AnswerTurn, citation: Citation): void => {
    const ask = turn.ask;
    if (!ask) return;
    ask.opened = ask.opened === citation.citation ? null : citation.citation;
    render();
  };

  const onKeyDown = (event: KeyboardEvent): void => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  };

  const onScroll = (): void => {
    const log = logRef.current;
    if (log) stick.current = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  };

  const providers = models ? providersOf(models) : [];
  if (provider && !providers.includes(provider)) providers.push(provider);
  const groups = new Map<string, ModelEntry[]>();
  for (const entry of models ?? []) {
    const key = entry.ownedBy === "alias" ? "Aliases" : entry.ownedBy || "Other";
    groups.set(key, [...(groups.get(key) ?? []), entry]);
  }
  const modelListed = models?.some((m) => m.id === model) ?? false;
  const noModels = models !== null && models.length === 0;
  const noCollections = mode === "ask" && collections !== null && collections.length === 0;
  const collectionListed = collections?.some((c) => c.name === collection) ?? false;
  const ready = !busy && model !== "" && (mode === "chat" || collection !== "");
  const run = running.current;
  const stopping = run?.kind === "ask" && (run.turn.ask?.stopping ?? false);
  const lastAnswer = [...turns].reverse().find((t) => t.role === "assistant");

  return (
    <section aria-labelledby="chat-title" class="chat-page">
      <div class="page-head">
        <h1 id="chat-title" tabIndex={-1}>
          Chat
        </h1>
      </div>

      <div class="panel chat-settings">
        <fieldset class="checks chat-mode">
          <legend>Mode</legend>
          <label>
            <input type="radio" name="chat-mode" value="chat" checked={mode === "chat"} onChange={() => setMode("chat")} />
            Chat with a model
          </label>
          <label>
            <input type="radio" name="chat-mode" value="ask" checked={mode === "ask"} onChange={() => setMode("ask")} />
            Ask a collection
          </label>
        </fieldset>

        <div class="chat-controls">
          <div class="field">
            <label for="chat-model">Model</label>
            <select
              id="chat-model"
              value={model}
              disabled={models === null && modelsError === null}
              onChange={(e) => setModel(e.currentTarget.value)}
            >
              {models === null && <option value={model}>{model || (modelsError ? "No models" : "Loading…")}</option>}
              {models !== null && model && !modelListed && <option value={model}>{model} (not listed)</option>}
              {noModels && !model && <option value="">No models</option>}
              {[...groups].map(([label, entries]) => (
                <optgroup key={label} label={label}>
                  {entries.map((entry) => (
                    <option key={entry.id} value={entry.id}>
                      {entry.id}
                    </option>
                  ))}
                </optgroup>
              ))}
            </select>
          </div>

          <div class="field">
            <label for="chat-provider">Provider</label>
            <select id="chat-provider" value={provider} onChange={(e) => setProvider(e.currentTarget.value)} aria-describedby="chat-provider-help">
              <option value="">Automatic</option>
              {providers.map((name) => (
                <option key={name} value={name}>
                  {name} only
                </option>
              ))}
            </select>
            <p id="chat-provider-help" class="help muted">
              Automatic tries the model's candidates in order, local first.
            </p>
          </div>

          <div class="field-check chat-fallback">
            <input id="chat-fallback" type="checkbox" checked={fallback} onChange={(e) => setFallback(e.currentTarget.checked)} aria-describedby="chat-fallback-help" />
            <label for="chat-fallback">Fallback</label>
            <p id="chat-fallback-help" class="help muted">
              When a candidate fails, try the next one.
            </p>
          </div>

          <div class="field chat-number">
            <label for="chat-temperature">Temperature</label>
            <input
              id="chat-temperature"
              type="number"
              min={0}
              max={2}
              step={0.1}
              placeholder="default"
              value={temperature}
              onInput={(e) => setTemperature(e.currentTarget.value)}
            />
          </div>

          <div class="field chat-number">
            <label for="chat-max-tokens">Max tokens</label>
            <input
              id="chat-max-tokens"
              type="number"
              min={1}
              step={1}
              placeholder="default"
              value={maxTokens}
              onInput={(e) => setMaxTokens(e.currentTarget.value)}
            />
          </div>

          {mode === "ask" && (
            <div class="field">
              <label for="chat-collection">Collection</label>
              <select
                id="chat-collection"
                value={collection}
                disabled={collections === null && collectionsError === null}
                onChange={(e) => setCollection(e.currentTarget.value)}
              >
                {collections === null && (
                  <option value={collection}>{collection || (collectionsError ? "No collections" : "Loading…")}</option>
                )}
                {collections !== null && collection && !collectionListed && (
                  <option value={collection}>{collection} (not found)</option>
                )}
                {noCollections && !collection && <option value="">No collections</option>}
                {(collections ?? []).map((c) => (
                  <option key={c.name} value={c.name}>
                    {c.name}
                  </option>
                ))}
              </select>
            </div>
          )}
        </div>
      </div>

      <ErrorNotice error={modelsError} title="Could not load the models" />
      {mode === "ask" && <ErrorNotice error={collectionsError} title="Could not list the collections" />}
      {models === null && modelsError === null && <p class="muted">Loading models…</p>}
      {noModels && (
        <div class="empty">
          <p>No models are available.</p>
          <p class="muted">
            Configure a provider or a model alias; the <a href="#/models">Models</a> page shows what is there.
          </p>
        </div>
      )}
      {mode === "ask" && collections === null && collectionsError === null && <p class="muted">Loading collections…</p>}
      {noCollections && (
        <div class="empty">
          <p>No collections yet.</p>
          <p class="muted">
            Create one and add documents on the <a href="#/memory">Memory</a> page.
          </p>
        </div>
      )}

      <div
        class="chat-log"
        ref={logRef}
        role="log"
        aria-live="polite"
        aria-label={mode === "ask" ? "Questions and answers" : "Conversation"}
        tabIndex={0}
        onScroll={onScroll}
      >
        {turns.length === 0 ? (
          <p class="muted chat-empty">
            {mode === "ask" ? "Ask a question about the collection's documents." : "No messages yet. Say something."}
          </p>
        ) : (
          <ol class="chat-turns">
            {turns.map((turn) => (
              <TurnView key={turn.id} turn={turn} last={turn === lastAnswer} onOpen={openCitation} />
            ))}
          </ol>
        )}
      </div>

      <ErrorNotice error={stopError} title="Could not stop the answer" />

      <form
        class="chat-compose"
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <label for="chat-input">{mode === "ask" ? "Question" : "Message"}</label>
        <textarea
          id="chat-input"
          ref={textarea}
          data-testid="chat-input"
          rows={3}
          value={input}
          onInput={(e) => setInput(e.currentTarget.value)}
          onKeyDown={onKeyDown}
          aria-describedby="chat-input-help"
        />
        <p id="chat-input-help" class="help muted">
          Enter sends; Shift+Enter starts a new line.
        </p>
        <div class="actions">
          <button type="submit" class="button primary" disabled={!ready}>
            Send
          </button>
          <button type="button" class="button danger" disabled={!busy || stopping} onClick={() => void stop()}>
            Stop
          </button>
          <button type="button" class="button quiet" disabled={busy || turns.length === 0} onClick={clear}>
            {mode === "ask" ? "Clear answers" : "Clear conversation"}
          </button>
        </div>
      </form>
    </section>
  );
}
