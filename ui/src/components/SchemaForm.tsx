// Form controls for the fields of a kind's input schema (see schema.ts).

import type { Field, RawValue } from "../schema";

interface FieldProps {
  field: Field;
  value: RawValue;
  error: string | undefined;
  onChange(value: RawValue): void;
}

export const fieldId = (name: string): string => `field-${name}`;

function constraints(field: Field): string {
  const s = field.schema;
  const parts: string[] = [];
  const num = (key: string): number | null => (typeof s[key] === "number" ? (s[key] as number) : null);
  const min = num("minimum") ?? num("exclusiveMinimum");
  const max = num("maximum") ?? num("exclusiveMaximum");
  if (min !== null && max !== null) parts.push(`${min} to ${max}`);
  else if (num("exclusiveMinimum") !== null) parts.push(`more than ${num("exclusiveMinimum")}`);
  else if (min !== null) parts.push(`at least ${min}`);
  else if (max !== null) parts.push(`at most ${max}`);
  if (field.kind === "lines") parts.push("one per line");
  if (field.kind === "json") parts.push("JSON");
  const d = field.defaultValue;
  if (d !== undefined && d !== null && !(Array.isArray(d) && d.length === 0) && typeof d !== "object") {
    parts.push(`default ${JSON.stringify(d)}`);
  }
  if (!field.required && field.kind !== "boolean") parts.push("optional, leave empty to omit");
  return parts.join("; ");
}

function FieldControl({ field, value, error, onChange }: FieldProps) {
  const id = fieldId(field.name);
  const helpId = `${id}-help`;
  const errorId = `${id}-error`;
  const describedBy = [helpId, error ? errorId : ""].filter(Boolean).join(" ");
  const text = typeof value === "string" ? value : "";
  const common = {
    id,
    name: field.name,
    "aria-describedby": describedBy,
    "aria-invalid": error ? true : undefined,
    "aria-required": field.required ? true : undefined,
  };
  let control;
  switch (field.kind) {
    case "boolean":
      control = (
        <input {...common} type="checkbox" checked={value === true} onChange={(e) => onChange(e.currentTarget.checked)} />
      );
      break;
    case "tristate":
      control = (
        <select {...common} value={text} onChange={(e) => onChange(e.currentTarget.value)}>
          <option value="">(not set)</option>
          <option value="true">true</option>
          <option value="false">false</option>
        </select>
      );
      break;
    case "enum":
      control = (
        <select {...common} value={text} onChange={(e) => onChange(e.currentTarget.value)}>
          <option value="">{field.required ? "Choose…" : "(not set)"}</option>
          {field.options.map((option, index) => (
            <option key={index} value={String(index)}>
              {typeof option === "string" ? option : JSON.stringify(option)}
            </option>
          ))}
        </select>
      );
      break;
    case "integer":
    case "number": {
      const s = field.schema;
      control = (
        <input
          {...common}
          type="number"
          inputMode={field.kind === "integer" ? "numeric" : "decimal"}
          step={field.kind === "integer" ? 1 : "any"}
          min={typeof s.minimum === "number" ? s.minimum : undefined}
          max={typeof s.maximum === "number" ? s.maximum : undefined}
          value={text}
          onInput={(e) => onChange(e.currentTarget.value)}
        />
      );
      break;
    }
    case "string":
      control = <input {...common} type="text" value={text} onInput={(e) => onChange(e.currentTarget.value)} />;
      break;
    case "text":
    case "lines":
    case "json":
      control = (
        <textarea
          {...common}
          rows={field.kind === "json" ? 6 : field.kind === "lines" ? 3 : 5}
          class={field.kind === "json" ? "mono" : undefined}
          spellcheck={field.kind === "text"}
          placeholder={field.kind === "json" ? field.example : undefined}
          value={text}
          onInput={(e) => onChange(e.currentTarget.value)}
        />
      );
      break;
  }
  const help = [field.description, constraints(field)].filter(Boolean);
  return (
    <div class={field.kind === "boolean" ? "field field-check" : "field"}>
      <label for={id}>
        {field.label}
        {field.required && (
          <span class="required" aria-hidden="true">
            {" "}
            *
          </span>
        )}
      </label>
      {control}
      <p class="help" id={helpId}>
        {help.map((part, i) => (
          <span key={i} class={i === 0 && field.description ? undefined : "muted"}>
            {i > 0 ? " — " : ""}
            {part}
          </span>
        ))}
        {field.required && <span class="sr-only"> (required)</span>}
      </p>
      {error && (
        <p class="field-error" id={errorId}>
          {error}
        </p>
      )}
    </div>
  );
}

export function SchemaForm(props: {
  fields: readonly Field[];
  values: Record<string, RawValue>;
  errors: Record<string, string>;
  onChange(name: string, value: RawValue): void;
}) {
  return (
    <>
      {props.fields.map((field) => (
        <FieldControl
          key={field.name}
          field={field}
          value={props.values[field.name] ?? ""}
          error={props.errors[field.name]}
          onChange={(value) => props.onChange(field.name, value)}
        />
      ))}
    </>
  );
}
