// Small helpers shared by the Memory page's modules: counts in words, scores, deferred focus
// and whole numbers read from a text input.

export const score = (value: number | null | undefined): string =>
  value === null || value === undefined ? "—" : value.toFixed(4);

export function focusLater(id: string): void {
  requestAnimationFrame(() => document.getElementById(id)?.focus());
}

export function intIn(text: string, min: number, max: number): number | null {
  const n = Number(text);
  return text.trim() !== "" && Number.isInteger(n) && n >= min && n <= max ? n : null;
}
