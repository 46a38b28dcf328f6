// Hash routing: `#/jobs`, `#/jobs/new`, `#/jobs/<id>` (plain paths are the JSON API).

import { useEffect, useState } from "preact/hooks";

export type Route =
  | { page: "jobs" }
  | { page: "new"; kind: string | null }
  | { page: "job"; id: string }
  | { page: "not-found"; path: string };

export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#/, "");
  const [path = "", query = ""] = raw.split("?", 2);
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean);
  if (parts.length === 0 || (parts.length === 1 && parts[0] === "jobs")) return { page: "jobs" };
  if (parts[0] === "jobs" && parts.length === 2) {
    if (parts[1] === "new") return { page: "new", kind: params.get("kind") };
    return { page: "job", id: decodeURIComponent(parts[1] ?? "") };
  }
  return { page: "not-found", path: raw };
}

export function jobHref(id: string): string {
  return `#/jobs/${encodeURIComponent(id)}`;
}

export function navigate(href: string): void {
  if (location.hash !== href) location.hash = href;
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
