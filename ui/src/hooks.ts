// Small shared hooks.

import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { onTokenChange } from "./auth";

/** A number that changes whenever the API token is saved or forgotten (an effect dependency
 * that reloads data under the new token). */
export function useTokenVersion(): number {
  const [version, setVersion] = useState(0);
  useEffect(() => onTokenChange(() => setVersion((v) => v + 1)), []);
  return version;
}

/** The window's inner height, kept current. */
export function useWindowHeight(): number {
  const [height, setHeight] = useState(window.innerHeight);
  useEffect(() => {
    const update = (): void => setHeight(window.innerHeight);
    window.addEventListener("resize", update);
    return () => window.removeEventListener("resize", update);
  }, []);
  return height;
}

/**
 * Calls `load` now, then again `everyMs` after each call ends, while the page is visible (and
 * at once when it becomes visible again) and `enabled`; never two calls at once. `load` gets a
 * signal that aborts when `deps` change or the component goes (then it must set no state); it
 * returns `false` to stop polling (an error that retrying will not fix). Returns a function that
 * loads at once (and polls on from there); turning `enabled` back on loads at once too.
 */
export function usePolling(
  load: (signal: AbortSignal) => Promise<boolean>,
  everyMs: number,
  deps: readonly unknown[],
  enabled = true,
): () => void {
  const now = useRef<() => void>(() => undefined);
  const on = useRef(enabled);
  on.current = enabled;
  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let inFlight = false;
    const schedule = (): void => {
      clearTimeout(timer);
      timer = undefined;
      if (!controller.signal.aborted && on.current && !document.hidden) timer = setTimeout(tick, everyMs);
    };
    async function tick(): Promise<void> {
      timer = undefined;
      if (controller.signal.aborted || document.hidden || inFlight) return;
      inFlight = true;
      let again = false;
      try {
        again = await load(controller.signal);
      } finally {
        inFlight = false;
      }
      if (again) schedule();
    }
    now.current = () => {
      clearTimeout(timer);
      void tick();
    };
    const onVisibility = (): void => {
      if (document.hidden) {
        clearTimeout(timer);
        timer = undefined;
      } else if (timer === undefined && !inFlight && on.current) {
        void tick();
      }
    };
    document.addEventListener("visibilitychange", onVisibility);
    void tick();
    return () => {
      clearTimeout(timer);
      controller.abort();
      document.removeEventListener("visibilitychange", onVisibility);
      now.current = () => undefined;
    };
  }, deps);
  const mounted = useRef(false);
  useEffect(() => {
    if (mounted.current && enabled) now.current();
    mounted.current = true;
  }, [enabled]);
  return useCallback(() => now.current(), []);
}
