// Form fields of the Memory page: `Field` (label, help and error around a control), the
// `described` ARIA wiring for its control, and the query and metadata filter fields shared by
// Search and Context pack.

import type { ComponentChildren } from "preact";
import { FieldError } from "../../components/FieldError";

/** `id`, `aria-describedby` and `aria-invalid` for a control rendered in a `Field`. */
export function described(id: string, help: boolean, error?: string) {
  const ids = [help ? `${id}-help` : "", error ? `${id}-error` : ""].filter(Boolean).join(" ");
  return { id, "aria-describedby": ids || undefined, "aria-invalid": error ? true : undefined };
}

export function Field(props: {
  id: string;
  label: ComponentChildren;
  help?: ComponentChildren;
  error?: string | undefined;
  check?: boolean;
  class?: string;
  children: ComponentChildren;
}) {
  return (
    <div class={`${props.check ? "field field-check" : "field"} ${props.class ?? ""}`}>
      <label for={props.id}>{props.label}</label>
      {props.children}
      {props.help && (
        <p class="help muted" id={`${props.id}-help`}>
          {props.help}
        </p>
      )}
      <FieldError id={`${props.id}-error`} text={props.error ?? null} />
    </div>
  );
}

export function QueryField({ id, value, error, onInput }: { id: string; value: string; error?: string | undefined; onInput(v: string): void }) {
  return (
    <Field id={id} label="Query (required)" error={error} class="mem-grow">
      <input
        type="text"
        enterKeyHint="search"
        {...described(id, false, error)}
        aria-required="true"
        value={value}
        onInput={(e) => onInput(e.currentTarget.value)}
      />
    </Field>
  );
}

export function FilterField({ id, value, error, onInput }: { id: string; value: string; error?: string | undefined; onInput(v: string): void }) {
  return (
    <Field
      id={id}
      label="Metadata filter"
      help={
        <>
          Optional JSON, e.g. <code>{'{"lang": "en"}'}</code>, <code>{'{"year": {"$gte": 2020}}'}</code>,{" "}
          <code>{'{"$or": [{"tag": "a"}, {"tag": "b"}]}'}</code>. Keys include <code>source</code> and{" "}
          <code>media_type</code>.
        </>
      }
      error={error}
    >
      <textarea
        class="mono"
        rows={2}
        spellcheck={false}
        {...described(id, true, error)}
        value={value}
        onInput={(e) => onInput(e.currentTarget.value)}
      />
    </Field>
  );
}
