// What a job's event stream has said so far: output, logs, progress, result, error.

import type { StreamEvent } from "./events";

export interface LogLine {
  seq: number | null;
  message: string;
  fields: Record<string, unknown>;
}

export interface JobStreamModel {
  /** The `token` texts, concatenated in order. */
  output: string;
  logs: LogLine[];
  progress: { done: number; total: number | null } | null;
  result: { value: unknown } | null;
  error: { code: string; detail: string } | null;
  /** The state of the last `state` event. */
  state: string | null;
  events: number;
}

export function emptyModel(): JobStreamModel {
  return { output: "", logs: [], progress: null, result: null, error: null, state: null, events: 0 };
}

function record(data: unknown): Record<string, unknown> {
  return typeof data === "object" && data !== null && !Array.isArray(data) ? (data as Record<string, unknown>) : {};
}

/** Folds one event into the model (mutates it). */
export function applyEvent(model: JobStreamModel, event: StreamEvent): void {
  const data = record(event.data);
  model.events += 1;
  switch (event.type) {
    case "token":
      if (typeof data.text === "string") model.output += data.text;
      break;
    case "log": {
      const { message, ...fields } = data;
      model.logs.push({ seq: event.seq, message: typeof message === "string" ? message : String(message ?? ""), fields });
      break;
    }
    case "progress":
      if (typeof data.done === "number") {
        model.progress = { done: data.done, total: typeof data.total === "number" ? data.total : null };
      }
      break;
    case "result":
      model.result = { value: event.data };
      break;
    case "error":
      model.error = {
        code: typeof data.code === "string" ? data.code : "error",
        detail: typeof data.detail === "string" ? data.detail : "",
      };
      break;
    case "state":
      if (typeof data.state === "string") model.state = data.state;
      break;
  }
}
