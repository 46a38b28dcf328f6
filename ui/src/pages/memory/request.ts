// `useRequest`: one request at a time for a panel, its result, error and loading state.

import { useEffect, useRef, useState } from "preact/hooks";
import { isAbort } from "../../api";

/** Runs one request at a time; a new one aborts the last. */
export function useRequest<T>() {
  const [state, setState] = useState<{ result: T | null; error: unknown; loading: boolean }>({
    result: null,
    error: null,
    loading: false,
  });
  const controller = useRef<AbortController | null>(null);
  useEffect(() => () => controller.current?.abort(), []);
  const run = (make: (signal: AbortSignal) => Promise<T>): void => {
    controller.current?.abort();
    const current = new AbortController();
    controller.current = current;
    setState((prev) => ({ ...prev, error: null, loading: true }));
    make(current.signal)
      .then((result) => setState({ result, error: null, loading: false }))
      .catch((error) => {
        if (!isAbort(error)) setState({ result: null, error, loading: false });
      });
  };
  return [state, run] as const;
}
