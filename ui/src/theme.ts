// Light/dark theme: follows `prefers-color-scheme` until the user picks one (kept in localStorage).

import { useEffect, useState } from "preact/hooks";

export type Theme = "light" | "dark";
const KEY = "ember.theme";
const query = window.matchMedia("(prefers-color-scheme: dark)");

function stored(): Theme | null {
  try {
    const value = localStorage.getItem(KEY);
    return value === "light" || value === "dark" ? value : null;
  } catch {
    return null;
  }
}

export function currentTheme(): Theme {
  return stored() ?? (query.matches ? "dark" : "light");
}

function apply(theme: Theme): void {
  document.documentElement.dataset.theme = theme;
}

/** Applies the theme before the first render. */
export function initTheme(): void {
  apply(currentTheme());
}

/** The theme and a setter that remembers the choice. */
export function useTheme(): [Theme, (theme: Theme) => void] {
  const [theme, setTheme] = useState<Theme>(currentTheme);
  useEffect(() => {
    const follow = (): void => {
      if (stored() === null) {
        apply(currentTheme());
        setTheme(currentTheme());
      }
    };
    query.addEventListener("change", follow);
    return () => query.removeEventListener("change", follow);
  }, []);
  const choose = (next: Theme): void => {
    try {
      localStorage.setItem(KEY, next);
    } catch {
      // not kept: applies to this page only
    }
    apply(next);
    setTheme(next);
  };
  return [theme, choose];
}
