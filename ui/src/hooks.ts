// Small shared hooks.

import { useEffect, useState } from "preact/hooks";
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
