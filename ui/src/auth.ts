// The API token: pasted once, kept for the browser tab's session only.

const KEY = "ember.token";
type Listener = () => void;
const listeners = new Set<Listener>();

export function getToken(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string | null): void {
  try {
    if (token) sessionStorage.setItem(KEY, token);
    else sessionStorage.removeItem(KEY);
  } catch {
    // Storage unavailable (private mode quota): the token then lives nowhere.
  }
  for (const listener of listeners) listener();
}

/** Calls `listener` whenever the token is saved or forgotten; returns the unsubscribe. */
export function onTokenChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Headers for an API request: `Authorization: Bearer` when a token is kept. */
export function authHeaders(): Record<string, string> {
  const token = getToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

let opener: (() => void) | null = null;

/** The shell registers how to open the Token dialog; error notices call `openTokenDialog`. */
export function registerTokenDialog(open: () => void): void {
  opener = open;
}

export function openTokenDialog(): void {
  opener?.();
}
