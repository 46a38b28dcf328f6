// Hash routing: `#/jobs`, `#/jobs/new`, `#/jobs/<id>`, `#/chat`, `#/memory`, `#/memory/<name>`,
// `#/agents`, `#/agents/<name>`, `#/models`, `#/vms`, `#/tokens` (plain paths are the JSON API).
// A route's query (`#/jobs?state=running`) is the page's own state, kept in `params`.

import { useEffect, useState } from "preact/hooks";

export type Route =
  | { page: "jobs"; params: URLSearchParams }
  | { page: "new"; kind: string | null }
  | { page: "job"; id: string }
  | { page: "chat"; params: URLSearchParams }
  | { page: "memory"; collection: string | null; params: URLSearchParams }
  | { page: "agents"; name: string | null }
  | { page: "models" }
  | { page: "vms" }
  | { page: "tokens" }
  | { page: "not-found"; path: string };

/** The top-level pages, in the order the navigation shows them. */
export const SECTIONS = [
  { page: "jobs", href: "#/jobs", label: "Jobs" },
  { page: "chat", href: "#/chat", label: "Chat" },
  { page: "memory", href: "#/memory", label: "Memory" },
  { page: "agents", href: "#/agents", label: "Agents" },
  { page: "models", href: "#/models", label: "Models" },
  { page: "vms", href: "#/vms", label: "VMs" },
  { page: "tokens", href: "#/tokens", label: "Tokens" },
] as const;

export type Section = (typeof SECTIONS)[number]["page"];

/** The navigation section a route belongs to. */
export function sectionOf(route: Route): Section | null {
  switch (route.page) {
    case "new":
    case "job":
      return "jobs";
    case "not-found":
      return null;
    default:
      return route.page;
  }
}

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#/, "");
  const [path = "", query = ""] = raw.split("?", 2);
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean).map((p) => decodeURIComponent(p));
  const [head, second] = parts;
  if (parts.length === 0 || (parts.length === 1 && head === "jobs")) return { page: "jobs", params };
  if (head === "jobs" && parts.length === 2) {
    if (second === "new") return { page: "new", kind: params.get("kind") };
    return { page: "job", id: second ?? "" };
  }
  if (parts.length === 1 && (head === "chat")) return { page: "chat", params };
  if (head === "memory" && parts.length <= 2) return { page: "memory", collection: second ?? null, params };
  if (head === "agents" && parts.length <= 2) return { page: "agents", name: second ?? null };
  if (parts.length === 1 && (head === "models" || head === "vms" || head === "tokens")) return { page: head };
  return { page: "not-found", path: raw };
}

export function jobHref(id: string): string {
  return `#/jobs/${encodeURIComponent(id)}`;
}

/** `#/<path>` with `params` as its query (empty values left out). */
export function hrefWith(path: string, params: Record<string, string | readonly string[] | null | undefined>): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === null || value === undefined) continue;
    for (const one of typeof value === "string" ? [value] : value) if (one !== "") query.append(name, one);
  }
  const text = query.toString();
  return text ? `#/${path}?${text}` : `#/${path}`;
}

export function navigate(href: string): void {
  if (location.hash !== href) location.hash = href;
}

/** Replaces the current hash without a history entry or a route change event (page state
 * kept in the URL, such as filters). */
export function replaceHash(href: string): void {
  if (location.hash !== href) history.replaceState(history.state, "", href);
}

/** The current route, re-rendering on every hash change. */
export function useRoute(): Route {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const update = (): void => setHash(location.hash);
    window.addEventListener("hashchange", update);
    return () => window.removeEventListener("hashchange", update);
  }, []);
  return parseHash(hash);
}
