// A collection's row actions, on the list and on the collection's own page: Export (as
// `<name>.jsonl`) and Delete with a confirm step; failures go to the caller as a `Problem`.

import { useEffect, useRef, useState } from "preact/hooks";
import { deleteCollection, exportCollection } from "../../memory";
import { announce } from "../../notices";

export type Problem = { title: string; error: unknown } | null;

export function ExportButton({ name, onError }: { name: string; onError(problem: Problem): void }) {
  const [busy, setBusy] = useState(false);
  const run = async (): Promise<void> => {
    setBusy(true);
    onError(null);
    try {
      await exportCollection(name);
      announce(`Exported ${name}.jsonl.`);
    } catch (error) {
      onError({ title: `Could not export ${name}`, error });
    } finally {
      setBusy(false);
    }
  };
  return (
    <button
      type="button"
      class="button"
      disabled={busy}
      aria-busy={busy}
      aria-label={`Export ${name} as ${name}.jsonl`}
      onClick={() => void run()}
    >
      {busy ? "Exporting…" : "Export"}
    </button>
  );
}

/** Delete with a confirm step: the button turns into "Yes, delete" / "Cancel" (Escape cancels). */
export function DeleteControl(props: { name: string; onDeleted(name: string): void; onError(problem: Problem): void }) {
  const { name } = props;
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const opener = useRef<HTMLButtonElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  const wasOpen = useRef(false);

  useEffect(() => {
    if (confirming) cancel.current?.focus();
    else if (wasOpen.current) opener.current?.focus();
    wasOpen.current = confirming;
  }, [confirming]);

  const remove = async (): Promise<void> => {
    setBusy(true);
    props.onError(null);
    try {
      await deleteCollection(name);
      announce(`Collection ${name} deleted.`);
      props.onDeleted(name);
    } catch (error) {
      props.onError({ title: `Could not delete ${name}`, error });
      setBusy(false);
      setConfirming(false);
    }
  };

  if (!confirming) {
    return (
      <button ref={opener} type="button" class="button" aria-label={`Delete ${name}`} onClick={() => setConfirming(true)}>
        Delete
      </button>
    );
  }
  return (
    <span
      class="mem-confirm"
      role="group"
      aria-label={`Confirm deleting ${name}`}
      onKeyDown={(e) => {
        if (e.key === "Escape" && !busy) {
          e.preventDefault();
          setConfirming(false);
        }
      }}
    >
      <span>Delete {name} and all its documents?</span>
      <button type="button" class="button danger" disabled={busy} aria-busy={busy} onClick={() => void remove()}>
        Yes, delete
      </button>
      <button ref={cancel} type="button" class="button" disabled={busy} onClick={() => setConfirming(false)}>
        Cancel
      </button>
    </span>
  );
}
