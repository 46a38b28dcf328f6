// Typed API calls of the Models and providers page: the model directory (`GET /api/tags`),
// what is loaded where (`GET /api/ps`, its `ember` object) and the providers with their
// breakers, budgets and usage (`GET /providers`), built on `json` of api.ts.

import { json as request } from "./api";

function json<T>(path: string, signal?: AbortSignal): Promise<T> {
  return request<T>(path, { cache: "no-store", signal });
}

/** A model of `GET /api/tags`: aliases (`ember.provider` "alias"), `provider/model` names and
 * bare names of the default providers; `digest` is the pinned sha256 of a local model file. */
export interface ModelTag {
  name: string;
  model: string;
  modified_at: string | null;
  size: number;
  digest: string;
  details: {
    format: string;
    family: string;
    families: string[] | null;
    parameter_size: string;
    quantization_level: string;
  };
  ember: { provider: string; context_length: number | null; warm?: boolean };
}

/** A model of `GET /api/ps`: `ember` has its first host's node, its hosts and whether on GPU. */
export interface RunningModel {
  name: string;
  model: string;
  size: number;
  size_vram: number;
  digest: string;
  expires_at: string | null;
  ember?: {
    node_id?: string;
    gpu?: boolean;
    queue_depth?: number;
    replicas?: number;
    nodes?: string[];
    loaded_at?: string | null;
    last_used_at?: string | null;
  };
}

export type BreakerState = "closed" | "open" | "half_open";

export interface Provider {
  name: string;
  kind: string | null;
  base_url: string | null;
  local: boolean;
  price: { prompt_per_1k_usd: number; completion_per_1k_usd: number };
  breaker: { state: BreakerState; retry_in_s: number };
}

export interface Spent {
  requests: number;
  tokens: number;
  cost_usd: number;
}

export interface Budget {
  scope: "principal" | "workspace" | "provider";
  name: string;
  /** The configuration key that sets it: the name, or `*`. */
  rule: string;
  tokens_per_day: number | null;
  cost_per_day_usd: number | null;
  spent: Spent;
}

export interface Usage {
  workspace: string;
  principal: string;
  provider: string;
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number;
}

/** `GET /providers`: as the answering replica sees them; usage and budgets of the rolling day
 * since `since`, as far as the caller may see them. */
export interface ProvidersView {
  since: string;
  providers: Provider[];
  budgets: Budget[];
  usage: Usage[];
}

export async function listTags(signal?: AbortSignal): Promise<ModelTag[]> {
  return (await json<{ models: ModelTag[] }>("/api/tags", signal)).models;
}

export async function listRunning(signal?: AbortSignal): Promise<RunningModel[]> {
  return (await json<{ models: RunningModel[] }>("/api/ps", signal)).models;
}

export function getProviders(signal?: AbortSignal): Promise<ProvidersView> {
  return json<ProvidersView>("/providers", signal);
}

/** The model name at its provider: `local/gemma` → `gemma`; a bare name as it is. */
export function modelPart(name: string): string {
  const slash = name.indexOf("/");
  return slash < 0 ? name : name.slice(slash + 1);
}

/** The loaded entry of a listed model, matched by its name or its name at the provider;
 * only models of the `hosted` providers (kind `llamacpp`) are loaded by ember (`null`: not
 * known, so any provider's). */
export function loadedEntry(
  tag: ModelTag,
  running: readonly RunningModel[],
  hosted: ReadonlySet<string> | null,
): RunningModel | undefined {
  const provider = tag.ember.provider;
  if (provider === "alias" || (hosted !== null && !hosted.has(provider))) return undefined;
  const own = modelPart(tag.name);
  return running.find((model) => model.name === tag.name || model.name === own);
}
