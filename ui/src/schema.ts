// A kind's input JSON schema (pydantic's) read into form fields, and form values back into input.

import type { Schema } from "./api";

export type FieldKind = "string" | "text" | "integer" | "number" | "boolean" | "tristate" | "enum" | "lines" | "json";

export interface Field {
  name: string;
  label: string;
  description: string;
  kind: FieldKind;
  required: boolean;
  /** The schema after `$ref` and `anyOf [x, null]` are resolved. */
  schema: Schema;
  /** Enum choices (kind `enum`). */
  options: unknown[];
  defaultValue: unknown;
  /** A JSON skeleton shown as the placeholder of a `json` field. */
  example: string;
}

/** A field's raw form value: text for inputs, a boolean for checkboxes. */
export type RawValue = string | boolean;

const LONG_NAME = /task|question|prompt|content|text|message|instruction|query|system|script|code|body|document/i;
const LONG_DESCRIPTION = /\b(task|question|prompt|content|text|instructions?|document|markdown)\b/i;

function isRecord(value: unknown): value is Schema {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Follows local `$ref`s (`#/$defs/Name`) and single-entry `allOf` wrappers. */
export function resolve(node: unknown, root: Schema, depth = 0): Schema {
  if (!isRecord(node)) return {};
  if (depth > 32) return node;
  if (typeof node.$ref === "string" && node.$ref.startsWith("#/")) {
    let target: unknown = root;
    for (const part of node.$ref.slice(2).split("/")) {
      target = isRecord(target) ? target[part.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined;
    }
    const { $ref: _ref, ...rest } = node;
    return { ...resolve(target, root, depth + 1), ...rest };
  }
  if (Array.isArray(node.allOf) && node.allOf.length === 1) {
    const { allOf, ...rest } = node;
    return { ...resolve(allOf[0], root, depth + 1), ...rest };
  }
  return node;
}

function isNull(node: unknown): boolean {
  return isRecord(node) && node.type === "null";
}

/** Drops the `null` branch of `anyOf`/`oneOf` or of a `type` list; says whether there was one. */
function unwrapNullable(node: Schema, root: Schema): { schema: Schema; nullable: boolean } {
  const branches = Array.isArray(node.anyOf) ? node.anyOf : Array.isArray(node.oneOf) ? node.oneOf : null;
  if (branches) {
    const rest = branches.filter((branch) => !isNull(branch));
    const nullable = rest.length < branches.length;
    if (rest.length === 1) {
      const { anyOf: _a, oneOf: _o, ...outer } = node;
      return { schema: { ...resolve(rest[0], root), ...outer }, nullable };
    }
    return { schema: node, nullable };
  }
  if (Array.isArray(node.type)) {
    const types = node.type.filter((t) => t !== "null");
    const nullable = types.length < node.type.length;
    return { schema: types.length === 1 ? { ...node, type: types[0] } : node, nullable };
  }
  return { schema: node, nullable: false };
}

function kindOf(name: string, schema: Schema, nullable: boolean): FieldKind {
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return "enum";
  if ("const" in schema) return "enum";
  switch (schema.type) {
    case "string": {
      const description = typeof schema.description === "string" ? schema.description : "";
      const long =
        LONG_NAME.test(name) ||
        LONG_DESCRIPTION.test(description) ||
        (typeof schema.maxLength === "number" && schema.maxLength > 8192);
      return long ? "text" : "string";
    }
    case "integer":
      return "integer";
    case "number":
      return "number";
    case "boolean":
      return nullable ? "tristate" : "boolean";
    case "array": {
      const items = isRecord(schema.items) ? schema.items : {};
      return items.type === "string" && !Array.isArray(items.enum) ? "lines" : "json";
    }
    default:
      return "json";
  }
}

function humanize(name: string): string {
  const words = name.replace(/_/g, " ").trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** A small JSON value of the schema's shape (required properties, first enum values). */
export function exampleOf(node: unknown, root: Schema, depth = 0): unknown {
  const schema = unwrapNullable(resolve(node, root), root).schema;
  if (depth > 4) return null;
  if (Array.isArray(schema.enum)) return schema.enum[0];
  if ("default" in schema && schema.default !== null && typeof schema.default !== "object") return schema.default;
  switch (schema.type) {
    case "string":
      return "";
    case "integer":
    case "number":
      return 0;
    case "boolean":
      return false;
    case "array":
      return [exampleOf(schema.items, root, depth + 1)];
    case "object": {
      const props = isRecord(schema.properties) ? schema.properties : {};
      // Required properties; an object with none shows all its properties at the top only.
      const required = Array.isArray(schema.required) ? schema.required : depth === 0 ? Object.keys(props) : [];
      const out: Record<string, unknown> = {};
      for (const key of required) if (typeof key === "string") out[key] = exampleOf(props[key], root, depth + 1);
      return out;
    }
    default:
      return null;
  }
}

/** The form fields of an object schema, in schema order. */
export function fieldsOf(rootSchema: Schema): Field[] {
  const root = resolve(rootSchema, rootSchema);
  const props = isRecord(root.properties) ? root.properties : {};
  const required = new Set(Array.isArray(root.required) ? root.required.filter((r) => typeof r === "string") : []);
  return Object.entries(props).map(([name, raw]) => {
    const outer = resolve(raw, rootSchema);
    const { schema, nullable } = unwrapNullable(outer, rootSchema);
    const kind = kindOf(name, schema, nullable);
    const description = typeof schema.description === "string" ? schema.description : "";
    const options = Array.isArray(schema.enum) ? schema.enum : "const" in schema ? [schema.const] : [];
    let example = "";
    if (kind === "json") {
      try {
        example = JSON.stringify(exampleOf(schema, rootSchema));
      } catch {
        example = "";
      }
    }
    return {
      name,
      // The property's own title; a `$ref`'s title names the model, not the field.
      label: typeof outer.title === "string" && outer.title && !(isRecord(raw) && "$ref" in raw) ? outer.title : humanize(name),
      description,
      kind,
      required: required.has(name),
      schema,
      options,
      defaultValue: "default" in outer ? outer.default : schema.default,
      example,
    };
  });
}

/** The initial raw value of a field: its default where a form control can show it. */
export function initialValue(field: Field): RawValue {
  const value = field.defaultValue;
  switch (field.kind) {
    case "boolean":
      return value === true;
    case "tristate":
      return typeof value === "boolean" ? String(value) : "";
    case "enum": {
      const index = field.options.findIndex((option) => option === value);
      return index >= 0 ? String(index) : "";
    }
    case "lines":
      return Array.isArray(value) ? value.filter((v) => typeof v === "string").join("\n") : "";
    case "json":
      return "";
    default:
      return typeof value === "string" || typeof value === "number" ? String(value) : "";
  }
}

export interface Collected {
  input: Record<string, unknown>;
  /** Client-side problems by field name. */
  errors: Record<string, string>;
}

function readField(field: Field, raw: RawValue): { value?: unknown; error?: string } {
  if (field.kind === "boolean") return { value: raw === true };
  const text = typeof raw === "string" ? raw : "";
  const empty = text.trim() === "";
  if (empty && field.kind !== "string" && field.kind !== "text") {
    return field.required ? { error: "Required." } : {};
  }
  switch (field.kind) {
    case "string":
    case "text":
      if (text === "" && !field.required) return {};
      return { value: text };
    case "integer": {
      if (!/^\s*-?\d+\s*$/.test(text)) return { error: "Enter a whole number." };
      return { value: Number(text) };
    }
    case "number": {
      const value = Number(text);
      return Number.isFinite(value) ? { value } : { error: "Enter a number." };
    }
    case "tristate":
      return { value: text === "true" };
    case "enum":
      return { value: field.options[Number(text)] };
    case "lines":
      return { value: text.split(/\r?\n/).filter((line) => line.trim() !== "") };
    case "json": {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (error) {
        return { error: `Not valid JSON: ${error instanceof Error ? error.message : String(error)}` };
      }
      const type = field.schema.type;
      if (type === "object" && !isRecord(value)) return { error: "Enter a JSON object ({...})." };
      if (type === "array" && !Array.isArray(value)) return { error: "Enter a JSON array ([...])." };
      return { value };
    }
  }
}

/** The job input from raw form values: empty optional fields are omitted. */
export function collect(fields: readonly Field[], values: Record<string, RawValue>): Collected {
  const input: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const field of fields) {
    const result = readField(field, values[field.name] ?? initialValue(field));
    if (result.error) errors[field.name] = result.error;
    else if ("value" in result) input[field.name] = result.value;
  }
  return { input, errors };
}

/** The field a 422 `loc` points at: the first part after `input` (and `body`). */
export function fieldOfLoc(loc: readonly (string | number)[]): string | null {
  const parts = [...loc];
  if (parts[0] === "body") parts.shift();
  if (parts[0] !== "input") return parts[0] === "kind" ? "kind" : null;
  const name = parts[1];
  return typeof name === "string" ? name : null;
}
