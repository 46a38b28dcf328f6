// The run view model of the Agents page: a run as shown (steps, their tool calls and results,
// the answer, how it ended), built from a live job's events or from its stored transcript.

import type { StoredTranscript } from "../../admin";
import type { JobStreamModel } from "../../jobStream";

export interface CallView {
  id: string;
  tool: string;
  args: unknown;
  result: { ok: boolean; code: string | null; content: string; durationS: number | null; truncated: boolean } | null;
}

export interface StepView {
  step: number;
  model: string;
  provider: string;
  finishReason: string | null;
  text: string;
  promptTokens: number | null;
  completionTokens: number | null;
  calls: CallView[];
}

export interface RunEnd {
  status: string;
  limit: string | null;
  error: { code: string; detail: string } | null;
  steps: number | null;
  promptTokens: number | null;
  completionTokens: number | null;
  costUsd: number | null;
  durationS: number | null;
}

export interface RunView {
  steps: StepView[];
  answer: string | null;
  notes: string[];
  end: RunEnd | null;
}

const str = (value: unknown): string => (typeof value === "string" ? value : value === null || value === undefined ? "" : String(value));
const num = (value: unknown): number | null => (typeof value === "number" && Number.isFinite(value) ? value : null);
const errorOf = (value: unknown): RunEnd["error"] => {
  if (typeof value !== "object" || value === null) return null;
  const record = value as Record<string, unknown>;
  return { code: str(record.code) || "error", detail: str(record.detail) };
};

/** The run so far, from its job's `log` events (`agent step`, `tool call`, `tool result`,
 * `agent finished`, `mcp server ready`) and `token` events (the answer). */
export function runFromStream(model: JobStreamModel): RunView {
  const steps: StepView[] = [];
  const byNumber = new Map<number, StepView>();
  const notes: string[] = [];
  let end: RunEnd | null = null;
  const stepOf = (value: unknown): StepView => {
    const n = num(value) ?? 0;
    let step = byNumber.get(n);
    if (!step) {
      step = { step: n, model: "", provider: "", finishReason: null, text: "", promptTokens: null, completionTokens: null, calls: [] };
      byNumber.set(n, step);
      steps.push(step);
    }
    return step;
  };
  for (const { message, fields: f } of model.logs) {
    if (message === "agent step") {
      const step = stepOf(f.step);
      step.model = str(f.model);
      step.provider = str(f.provider);
      step.finishReason = typeof f.finish_reason === "string" ? f.finish_reason : null;
      step.text = str(f.text);
      step.promptTokens = num(f.prompt_tokens);
      step.completionTokens = num(f.completion_tokens);
    } else if (message === "tool call") {
      stepOf(f.step).calls.push({ id: str(f.call_id), tool: str(f.tool), args: f.arguments, result: null });
    } else if (message === "tool result") {
      const step = stepOf(f.step);
      let call = step.calls.find((c) => c.id === str(f.call_id));
      if (!call) {
        call = { id: str(f.call_id), tool: str(f.tool), args: undefined, result: null };
        step.calls.push(call);
      }
      const content = str(f.content);
      call.result = {
        ok: f.ok === true,
        code: typeof f.code === "string" ? f.code : null,
        content,
        durationS: num(f.duration_s),
        truncated: content.length > 1000 && content.endsWith("…"),
      };
    } else if (message === "agent finished") {
      end = {
        status: str(f.status),
        limit: typeof f.limit === "string" ? f.limit : null,
        error: errorOf(f.error),
        steps: num(f.steps),
        promptTokens: num(f.prompt_tokens),
        completionTokens: num(f.completion_tokens),
        costUsd: num(f.cost_usd),
        durationS: num(f.duration_s),
      };
    } else if (message === "mcp server ready") {
      const tools = Array.isArray(f.tools) ? f.tools.map(str).join(", ") : "";
      notes.push(`MCP server ${str(f.server)} ready${tools ? `: ${tools}` : ""}`);
    }
  }
  return { steps, answer: model.output || null, notes, end };
}

function parseArguments(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** A stored transcript as a run: each step's assistant message gives its text and calls, the
 * `tool` messages the results. */
export function runFromTranscript(t: StoredTranscript): RunView {
  const assistants = t.messages.filter((m) => m.role === "assistant");
  const results = new Map<string, string>();
  for (const m of t.messages) if (m.role === "tool" && m.tool_call_id) results.set(m.tool_call_id, m.content ?? "");
  const steps = t.steps.map((s, index): StepView => {
    const message = assistants[index];
    const outcomes = new Map(s.tool_calls.map((c) => [c.call_id, c]));
    const calls: CallView[] = (message?.tool_calls ?? []).map((tc) => {
      const o = outcomes.get(tc.id);
      outcomes.delete(tc.id);
      return {
        id: tc.id,
        tool: tc.function.name,
        args: parseArguments(tc.function.arguments),
        result: o ? { ok: o.ok, code: o.code, content: results.get(tc.id) ?? "", durationS: o.duration_s, truncated: o.truncated ?? false } : null,
      };
    });
    for (const o of outcomes.values()) {
      calls.push({
        id: o.call_id,
        tool: o.name,
        args: undefined,
        result: { ok: o.ok, code: o.code, content: results.get(o.call_id) ?? "", durationS: o.duration_s, truncated: o.truncated ?? false },
      });
    }
    return {
      step: s.step,
      model: s.model,
      provider: s.provider,
      finishReason: s.finish_reason,
      text: message?.content ?? "",
      promptTokens: s.usage.prompt_tokens,
      completionTokens: s.usage.completion_tokens,
      calls,
    };
  });
  const over = t.status !== "running" && t.status !== "pending";
  return {
    steps,
    answer: t.answer,
    notes: (t.artifacts_dropped ?? []).map((d) => `File not kept as an artifact: ${d.path} (${d.reason})`),
    end: over
      ? {
          status: t.status,
          limit: t.limit,
          error: errorOf(t.error),
          steps: t.steps.length,
          promptTokens: t.usage.prompt_tokens,
          completionTokens: t.usage.completion_tokens,
          costUsd: t.cost_usd,
          durationS: t.duration_s,
        }
      : null,
  };
}
