// The form state of Search and Context pack (query and filter are shared between them), read
// from and written to the URL query, and the props each tab's panel gets.

import { SEARCH_MODES, type SearchMode } from "../../memory";

/** The form state of Search and Context (query and filter are shared); numbers as typed. */
export interface Query {
  q: string;
  filter: string;
  k: string;
  mode: SearchMode;
  explain: boolean;
  per: boolean;
  mmr: string;
  budget: string;
  ck: string;
}

const DEFAULTS: Query = { q: "", filter: "", k: "10", mode: "hybrid", explain: true, per: false, mmr: "", budget: "1000", ck: "20" };

export function queryOf(params: URLSearchParams): Query {
  const mode = params.get("mode");
  return {
    q: params.get("q") ?? "",
    filter: params.get("filter") ?? "",
    k: params.get("k") ?? DEFAULTS.k,
    mode: SEARCH_MODES.find((m) => m === mode) ?? DEFAULTS.mode,
    explain: params.get("explain") !== "0",
    per: params.get("per") === "1",
    mmr: params.get("mmr") ?? "",
    budget: params.get("budget") ?? DEFAULTS.budget,
    ck: params.get("ck") ?? DEFAULTS.ck,
  };
}

export function paramsOf(query: Query): Record<string, string | null> {
  const unlessDefault = (key: "k" | "mode" | "budget" | "ck"): string | null =>
    query[key] === DEFAULTS[key] ? null : query[key];
  return {
    q: query.q,
    filter: query.filter,
    k: unlessDefault("k"),
    mode: unlessDefault("mode"),
    explain: query.explain ? null : "0",
    per: query.per ? "1" : null,
    mmr: query.mmr,
    budget: unlessDefault("budget"),
    ck: unlessDefault("ck"),
  };
}

export interface PanelProps {
  name: string;
  query: Query;
  set<K extends keyof Query>(key: K, value: Query[K]): void;
  commit(): void;
  autoRun: boolean;
}
