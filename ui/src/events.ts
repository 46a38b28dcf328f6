/**
 * Following a stream of numbered Server-Sent Events without losing or repeating one.
 *
 * The server numbers each stored event (`id: <seq>`, 1, 2, 3, ...) and resumes a stream after
 * any number (`?after=N`). `follow()` reads the stream with `fetch()` (so headers such as
 * `Authorization` can be sent), parses SSE itself, remembers the last number it delivered and
 * drops any event numbered at or below it. When the connection drops (fetch rejects, the body
 * errors, the stream ends before a final event, or nothing, not even a `: heartbeat` comment,
 * arrives for `idleTimeoutMs`) it reconnects after that number: after 250 ms, then 500 ms, then
 * every second, and at once when the window comes back `online`.
 *
 *     const follower = follow({
 *       open: (after, signal) => fetch(`/jobs/${id}/events?after=${after}`, { headers, signal }),
 *       onEvent: (event) => { ... },       // each event exactly once, in order
 *       onStatus: (status, error) => { ... },
 *     });
 *     follower.stop();                      // aborts the fetch; nothing is delivered after
 *
 * Nothing here knows about the UI or about jobs beyond the default `isFinal`.
 */

/** One event. `seq` is null for an event the server sent without an id (not stored, e.g. a
 * stream-level `error`); such events are delivered as they come and never deduplicated. */
export interface StreamEvent {
  seq: number | null;
  type: string;
  /** The `data:` lines parsed as JSON (the raw string where they are not JSON). */
  data: unknown;
}

/**
 * - `connecting`: first connection under way.
 * - `live`: connected, events flow.
 * - `reconnecting`: the connection dropped; retrying.
 * - `ended`: the final event was delivered (or `isOver` said so); nothing more will come.
 * - `failed`: the server refused the stream for good (see `FollowError`).
 * - `stopped`: `stop()` was called.
 */
export type FollowStatus = "connecting" | "live" | "reconnecting" | "ended" | "failed" | "stopped";

/** How a stream's status reads next to its output. */
export const FOLLOW_STATUS_TEXT: Record<FollowStatus, string> = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  ended: "stream complete",
  failed: "stream unavailable",
  stopped: "",
};

/** The stream was refused with a status that retrying will not fix (by default a 4xx other
 * than 408, 425 and 429). `response` is unread: parse its problem+json as you like. */
export class FollowError extends Error {
  readonly response: Response;
  constructor(response: Response) {
    super(`event stream refused with status ${response.status}`);
    this.name = "FollowError";
    this.response = response;
  }
}

export interface FollowOptions {
  /** Opens the stream of events after `after` (0: from the start); must honour `signal`. */
  open(after: number, signal: AbortSignal): Promise<Response>;
  /** Receives each event once, in order. */
  onEvent(event: StreamEvent): void;
  /** Told of every status change; `error` comes with `failed`. */
  onStatus?(status: FollowStatus, error?: unknown): void;
  /** Start after this number (default 0: replay everything stored). */
  after?: number;
  /** Whether `event` is the last one (default: a `state` event with state succeeded, failed or
   * cancelled). After it the stream is closed and the status becomes `ended`. */
  isFinal?(event: StreamEvent): boolean;
  /** Asked when a stream ends cleanly without a final event; resolving true ends following
   * (e.g. the job is known to be over and its final event was not kept). */
  isOver?(): Promise<boolean>;
  /** Whether a non-2xx response is final (default: 4xx other than 408, 425, 429). */
  isFatal?(response: Response): boolean;
  /** Silence longer than this (no bytes at all) counts as a drop. Default 15000. */
  idleTimeoutMs?: number;
  /** Waits before successive retries; the last repeats. Default [250, 500, 1000]. */
  retryDelaysMs?: readonly number[];
}

export interface Follower {
  /** Stops following for good: aborts the fetch, cancels timers and listeners. */
  stop(): void;
  /** The number of the last event delivered (the `after` of the next connection). */
  readonly lastSeq: number;
  readonly status: FollowStatus;
}

const FINAL = new Set(["succeeded", "failed", "cancelled"]);

export function isFinalStateEvent(event: StreamEvent): boolean {
  if (event.type !== "state" || typeof event.data !== "object" || event.data === null) return false;
  const state = (event.data as { state?: unknown }).state;
  return typeof state === "string" && FINAL.has(state);
}

function defaultIsFatal(response: Response): boolean {
  const status = response.status;
  return status >= 400 && status < 500 && status !== 408 && status !== 425 && status !== 429;
}

/** One parsed SSE message. `id` is this message's own `id:` field (null when it had none). */
export interface SseMessage {
  id: string | null;
  event: string;
  data: string;
}

/** An incremental SSE parser: feed decoded text, get whole messages; comments are skipped. */
export class SseParser {
  private buffer = "";
  private id: string | null = null;
  private event = "";
  private data: string[] = [];

  push(text: string): SseMessage[] {
    this.buffer += text;
    const out: SseMessage[] = [];
    let start = 0;
    for (;;) {
      const lf = this.buffer.indexOf("\n", start);
      const cr = this.buffer.indexOf("\r", start);
      const end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (end < 0) break;
      let next = end + 1;
      if (this.buffer[end] === "\r") {
        if (next === this.buffer.length) break; // a "\n" may follow in the next chunk
        if (this.buffer[next] === "\n") next += 1;
      }
      this.line(this.buffer.slice(start, end), out);
      start = next;
    }
    this.buffer = this.buffer.slice(start);
    return out;
  }

  private line(line: string, out: SseMessage[]): void {
    if (line === "") {
      if (this.data.length > 0) out.push({ id: this.id, event: this.event || "message", data: this.data.join("\n") });
      this.id = null;
      this.event = "";
      this.data = [];
      return;
    }
    if (line.startsWith(":")) return; // a comment, e.g. ": heartbeat"
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id" && !value.includes("\0")) this.id = value;
  }
}

function parseData(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}

type Outcome = "final" | "fatal" | "dropped" | "ended-early" | "stopped";

/** Starts following; see the module comment. */
export function follow(options: FollowOptions): Follower {
  const isFinal = options.isFinal ?? isFinalStateEvent;
  const isFatal = options.isFatal ?? defaultIsFatal;
  const idleMs = options.idleTimeoutMs ?? 15_000;
  const delays = options.retryDelaysMs?.length ? options.retryDelaysMs : [250, 500, 1000];

  let lastSeq = options.after ?? 0;
  let status: FollowStatus = "connecting";
  let stopped = false;
  let failures = 0; // connections in a row that received nothing
  let skipWait = false;
  let connection: AbortController | null = null;
  let wake: (() => void) | null = null;
  let fatalError: unknown = null;

  const setStatus = (next: FollowStatus, error?: unknown): void => {
    if (next === status && error === undefined) return;
    status = next;
    options.onStatus?.(next, error);
  };

  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        wake = null;
        resolve();
      }
      wake = done;
    });

  const onOnline = (): void => {
    if (wake) wake();
    else if (connection) {
      skipWait = true;
      connection.abort();
    }
  };
  const onOffline = (): void => {
    connection?.abort();
  };
  window.addEventListener("online", onOnline);
  window.addEventListener("offline", onOffline);

  const deliver = (message: SseMessage): StreamEvent | null => {
    let seq: number | null = null;
    if (message.id !== null && /^\d+$/.test(message.id)) {
      seq = Number(message.id);
      if (seq <= lastSeq) return null; // already delivered
      lastSeq = seq;
    }
    const event: StreamEvent = { seq, type: message.event, data: parseData(message.data) };
    try {
      options.onEvent(event);
    } catch (error) {
      console.error("onEvent failed", error);
    }
    return event;
  };

  async function connectOnce(): Promise<Outcome> {
    const controller = new AbortController();
    connection = controller;
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    const armIdle = (): void => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => controller.abort(), idleMs);
    };
    try {
      armIdle();
      const response = await options.open(lastSeq, controller.signal);
      if (!response.ok) {
        if (isFatal(response)) {
          fatalError = new FollowError(response);
          return "fatal";
        }
        void response.body?.cancel().catch(() => undefined);
        return "dropped";
      }
      if (!response.body) return "dropped";
      setStatus("live");
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const parser = new SseParser();
      for (;;) {
        const { done, value } = await reader.read();
        if (stopped) return "stopped";
        if (done) return "ended-early";
        failures = 0;
        armIdle();
        for (const message of parser.push(decoder.decode(value, { stream: true }))) {
          const event = deliver(message);
          if (stopped) return "stopped";
          if (event && isFinal(event)) {
            controller.abort();
            return "final";
          }
        }
      }
    } catch {
      return stopped ? "stopped" : "dropped";
    } finally {
      clearTimeout(idleTimer);
      if (connection === controller) connection = null;
    }
  }

  async function run(): Promise<void> {
    while (!stopped) {
      const outcome = await connectOnce();
      if (stopped || outcome === "stopped") break;
      if (outcome === "final") {
        setStatus("ended");
        break;
      }
      if (outcome === "fatal") {
        setStatus("failed", fatalError);
        break;
      }
      if (outcome === "ended-early" && options.isOver) {
        let over = false;
        try {
          over = await options.isOver();
        } catch {
          over = false;
        }
        if (stopped) break;
        if (over) {
          setStatus("ended");
          break;
        }
      }
      setStatus("reconnecting");
      const delay = delays[Math.min(failures, delays.length - 1)] ?? 1000;
      failures += 1;
      if (skipWait) skipWait = false;
      else await pause(delay);
    }
    window.removeEventListener("online", onOnline);
    window.removeEventListener("offline", onOffline);
  }

  void run();

  return {
    stop(): void {
      if (stopped) return;
      stopped = true;
      connection?.abort();
      wake?.();
      setStatus("stopped");
    },
    get lastSeq(): number {
      return lastSeq;
    },
    get status(): FollowStatus {
      return status;
    },
  };
}
