// The collection list (`#/memory`): collections paged, Load more, each with Export and
// Delete; the New collection form (with field errors) and the Import form.

import { useEffect, useState } from "preact/hooks";
import { isAbort } from "../../api";
import { ErrorNotice } from "../../components/ErrorNotice";
import { formatTime, plural } from "../../format";
import { useTokenVersion } from "../../hooks";
import {
  createCollection,
  exportedName,
  fieldMessages,
  importCollection,
  listCollections,
  NAME_PATTERN,
  parseObject,
  type Collection,
} from "../../memory";
import { announce } from "../../notices";
import { DeleteControl, ExportButton, type Problem } from "./CollectionActions";
import { described, Field } from "./fields";
import { focusLater } from "./helpers";

const PAGE = 100;
const NAME_RULE = "Lowercase letters, digits, _ and -; 1 to 64 characters, starting with a letter or digit.";

const collectionHref = (name: string): string => `#/memory/${encodeURIComponent(name)}`;

const CREATE_FIELDS = ["name", "description", "embedding_model", "metadata"] as const;

function CreateForm({ onCreated }: { onCreated(collection: Collection): void }) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [model, setModel] = useState("");
  const [metadata, setMetadata] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<string | null>(null);

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    if (busy) return;
    const problems: Record<string, string> = {};
    if (name === "") problems.name = "Required.";
    else if (!NAME_PATTERN.test(name)) problems.name = NAME_RULE;
    if (description.length > 2000) problems.description = "At most 2,000 characters.";
    const meta = parseObject(metadata);
    if (meta.error) problems.metadata = meta.error;
    setErrors(problems);
    setError(null);
    setCreated(null);
    const first = CREATE_FIELDS.find((f) => problems[f]);
    if (first) return focusLater(`create-${first}`);
    setBusy(true);
    try {
      const collection = await createCollection({
        name,
        ...(description ? { description } : {}),
        ...(model.trim() ? { embedding_model: model.trim() } : {}),
        ...(meta.value ? { metadata: meta.value } : {}),
      });
      announce(`Collection ${collection.name} created.`);
      setCreated(collection.name);
      setName("");
      setDescription("");
      setModel("");
      setMetadata("");
      onCreated(collection);
    } catch (caught) {
      setError(caught);
      const byField = fieldMessages(caught, CREATE_FIELDS, { collection_exists: "name" });
      setErrors(byField);
      const field = CREATE_FIELDS.find((f) => byField[f]);
      if (field) focusLater(`create-${field}`);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="create-title">
      <h2 id="create-title">New collection</h2>
      <form class="form" noValidate onSubmit={(e) => void submit(e)}>
        <Field id="create-name" label="Name (required)" help={NAME_RULE} error={errors.name}>
          <input
            type="text"
            {...described("create-name", true, errors.name)}
            aria-required="true"
            autoComplete="off"
            spellcheck={false}
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </Field>
        <Field id="create-description" label="Description" error={errors.description}>
          <textarea
            {...described("create-description", false, errors.description)}
            rows={2}
            value={description}
            onInput={(e) => setDescription(e.currentTarget.value)}
          />
        </Field>
        <Field
          id="create-embedding_model"
          label="Embedding model"
          help="Optional. Leave empty for the configured model; the server refuses any other."
          error={errors.embedding_model}
        >
          <input
            type="text"
            {...described("create-embedding_model", true, errors.embedding_model)}
            autoComplete="off"
            spellcheck={false}
            value={model}
            onInput={(e) => setModel(e.currentTarget.value)}
          />
        </Field>
        <Field id="create-metadata" label="Metadata" help="Optional JSON object." error={errors.metadata}>
          <textarea
            class="mono"
            {...described("create-metadata", true, errors.metadata)}
            rows={2}
            spellcheck={false}
            placeholder='{"team": "docs"}'
            value={metadata}
            onInput={(e) => setMetadata(e.currentTarget.value)}
          />
        </Field>
        <ErrorNotice error={error} title="The collection was not created" />
        <div class="actions">
          <button type="submit" class="button primary" disabled={busy} aria-busy={busy}>
            Create collection
          </button>
        </div>
        {created && (
          <p>
            Created <a href={collectionHref(created)}>{created}</a>.
          </p>
        )}
      </form>
    </section>
  );
}

function ImportForm({ onImported }: { onImported(): void }) {
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ name: string; counts: [string, number][] } | null>(null);

  const pick = async (picked: File | null): Promise<void> => {
    setFile(picked);
    setResult(null);
    setErrors({});
    if (!picked) return;
    const stem = picked.name.replace(/\.(jsonl|ndjson)$/i, "").toLowerCase();
    const fromFile = (await exportedName(picked)) ?? (NAME_PATTERN.test(stem) ? stem : null);
    if (fromFile) setName(fromFile);
  };

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    if (busy) return;
    const problems: Record<string, string> = {};
    if (!file) problems.file = "Choose an export file.";
    if (name === "") problems.name = "Required.";
    else if (!NAME_PATTERN.test(name)) problems.name = NAME_RULE;
    setErrors(problems);
    setError(null);
    setResult(null);
    if (problems.file) return focusLater("import-file");
    if (problems.name || !file) return focusLater("import-name");
    setBusy(true);
    try {
      const answer = await importCollection(name, file);
      const counts = Object.entries(answer).filter((entry): entry is [string, number] => typeof entry[1] === "number");
      const target = typeof answer.collection === "string" ? answer.collection : name;
      setResult({ name: target, counts });
      announce(`Imported ${file.name} into ${target}.`);
      onImported();
    } catch (caught) {
      setError(caught);
      const byField = fieldMessages(caught, ["name"], {
        collection_exists: "name",
        bad_request: "file",
        dimension_mismatch: "file",
      });
      setErrors(byField);
      if (byField.name) focusLater("import-name");
      else if (byField.file) focusLater("import-file");
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="import-title">
      <h2 id="import-title">Import a collection</h2>
      <form class="form" noValidate onSubmit={(e) => void submit(e)}>
        <Field
          id="import-file"
          label="Export file (required)"
          help="JSON Lines, as Export downloads them."
          error={errors.file}
        >
          <input
            type="file"
            accept=".jsonl,.ndjson,application/x-ndjson"
            {...described("import-file", true, errors.file)}
            aria-required="true"
            onChange={(e) => void pick(e.currentTarget.files?.[0] ?? null)}
          />
        </Field>
        <Field
          id="import-name"
          label="Collection name (required)"
          help="The collection to import into; the export's own name by default."
          error={errors.name}
        >
          <input
            type="text"
            {...described("import-name", true, errors.name)}
            aria-required="true"
            autoComplete="off"
            spellcheck={false}
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </Field>
        <ErrorNotice error={error} title="The import failed" />
        <div class="actions">
          <button type="submit" class="button primary" disabled={busy} aria-busy={busy}>
            {busy ? "Importing…" : "Import"}
          </button>
        </div>
        {result && (
          <p>
            Imported into <a href={collectionHref(result.name)}>{result.name}</a>
            {result.counts.length > 0 && ": "}
            {result.counts.map(([key, value]) => `${key.replace(/_/g, " ")} ${value.toLocaleString()}`).join(", ")}.
          </p>
        )}
      </form>
    </section>
  );
}

export function Collections() {
  const [items, setItems] = useState<Collection[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [problem, setProblem] = useState<Problem>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [reload, setReload] = useState(0);
  const tokenVersion = useTokenVersion();

  useEffect(() => {
    const controller = new AbortController();
    setError(null);
    listCollections(null, PAGE, controller.signal)
      .then((page) => {
        setItems(page.items);
        setNext(page.next);
      })
      .catch((caught) => {
        if (!isAbort(caught)) setError(caught);
      });
    return () => controller.abort();
  }, [tokenVersion, reload]);

  const loadMore = async (): Promise<void> => {
    if (!next || loadingMore) return;
    setLoadingMore(true);
    try {
      const page = await listCollections(next, PAGE);
      setItems((prev) => {
        const seen = new Set((prev ?? []).map((c) => c.name));
        return [...(prev ?? []), ...page.items.filter((c) => !seen.has(c.name))];
      });
      setNext(page.next);
    } catch (caught) {
      setProblem({ title: "Could not load more collections", error: caught });
    } finally {
      setLoadingMore(false);
    }
  };

  const onCreated = (collection: Collection): void =>
    setItems((prev) => {
      if (prev === null) return prev;
      const last = prev[prev.length - 1];
      if (next !== null && last !== undefined && collection.name > last.name) return prev;
      return [...prev.filter((c) => c.name !== collection.name), collection].sort((a, b) => (a.name < b.name ? -1 : 1));
    });

  const onDeleted = (name: string): void => {
    setItems((prev) => prev && prev.filter((c) => c.name !== name));
    focusLater("collections-title");
  };

  return (
    <section aria-labelledby="memory-title">
      <div class="page-head">
        <h1 id="memory-title" tabIndex={-1}>
          Memory
        </h1>
      </div>
      <section class="panel" aria-labelledby="collections-title" aria-busy={items === null && error === null}>
        <h2 id="collections-title" tabIndex={-1}>
          Collections
        </h2>
        {problem && <ErrorNotice error={problem.error} title={problem.title} />}
        <ErrorNotice error={error} title="Could not load the collections" />
        {items === null && error === null && (
          <p class="muted" role="status">
            Loading collections…
          </p>
        )}
        {items !== null && items.length === 0 && (
          <div class="empty">
            <p>No collections yet.</p>
            <p>Create one below, or import an export.</p>
          </div>
        )}
        {items !== null && items.length > 0 && (
          <div class="mem-scroll">
            <table class="table mem-table" aria-labelledby="collections-title">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Description</th>
                  <th scope="col">Embedding model</th>
                  <th scope="col">Created</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {items.map((c) => (
                  <tr key={c.name} data-testid="collection-row">
                    <td>
                      <a href={collectionHref(c.name)} class="mono">
                        {c.name}
                      </a>
                    </td>
                    <td>{c.description || <span class="muted">—</span>}</td>
                    <td class="mono">{c.embedding_model ?? "—"}</td>
                    <td>
                      <time dateTime={c.created_at}>{formatTime(c.created_at)}</time>
                    </td>
                    <td>
                      <div class="mem-row-actions">
                        <ExportButton name={c.name} onError={setProblem} />
                        <DeleteControl name={c.name} onDeleted={onDeleted} onError={setProblem} />
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {items !== null && items.length > 0 && (
          <p class="muted">
            {plural(items.length, "collection")} shown{next ? ", more available" : ""}.
          </p>
        )}
        {next && (
          <button type="button" class="button" onClick={() => void loadMore()} disabled={loadingMore} aria-busy={loadingMore}>
            Load more
          </button>
        )}
      </section>
      <div class="mem-columns">
        <CreateForm onCreated={onCreated} />
        <ImportForm onImported={() => setReload((r) => r + 1)} />
      </div>
    </section>
  );
}
