/** A job state as a badge: the state's name in text, coloured by state. */
export function StateBadge({ state, testId }: { state: string; testId?: string }) {
  return (
    <span class={`badge badge-${state}`} data-testid={testId}>
      {state}
    </span>
  );
}
