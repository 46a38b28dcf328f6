// The Upload tab: files (with shared metadata) into `/documents` in batches, a batch refused
// whole sent again one document at a time; progress, counts and per-file errors as it goes,
// and Stop.

import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, isAbort } from "../../api";
import { ErrorNotice } from "../../components/ErrorNotice";
import { formatBytes, plural } from "../../format";
import { batches, ingest, parseObject, readDocument, type DocumentIn } from "../../memory";
import { announce } from "../../notices";
import { described, Field } from "./fields";
import { focusLater } from "./helpers";

const BATCH_FILES = 20;
const BATCH_BYTES = 4 * 1024 * 1024;
const SHOWN_ERRORS = 200;
const TEXT_TYPES =
  ".txt,.text,.md,.markdown,.html,.htm,.csv,.tsv,.json,.jsonl,.log,.rst,.xml,.yaml,.yml,.toml,.ini,.pdf,text/*";

interface Progress {
  files: number;
  done: number;
  created: number;
  updated: number;
  unchanged: number;
  duplicate: number;
  failed: number;
  chunks: number;
  errors: { source: string; code: string; message: string }[];
  indexError: string | null;
  state: "running" | "done" | "stopped" | "failed";
}

const STATE_TEXT: Record<Progress["state"], string> = {
  running: "Uploading…",
  done: "Upload finished.",
  stopped: "Upload stopped; a batch in flight may still have been stored.",
  failed: "Upload stopped by an error.",
};

export function UploadPanel({ name }: { name: string }) {
  const [files, setFiles] = useState<File[]>([]);
  const [metadata, setMetadata] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [progress, setProgress] = useState<Progress | null>(null);
  const [fatal, setFatal] = useState<unknown>(null);
  const controller = useRef<AbortController | null>(null);
  useEffect(() => () => controller.current?.abort(), []);
  const running = progress?.state === "running";

  const start = async (event: Event): Promise<void> => {
    event.preventDefault();
    if (running) return;
    const problems: Record<string, string> = {};
    if (files.length === 0) problems.files = "Choose at least one file.";
    const meta = parseObject(metadata);
    if (meta.error) problems.metadata = meta.error;
    setErrors(problems);
    if (problems.files) return focusLater("upload-files");
    if (problems.metadata) return focusLater("upload-metadata");

    const current = new AbortController();
    controller.current = current;
    setFatal(null);
    const p: Progress = {
      files: files.length,
      done: 0,
      created: 0,
      updated: 0,
      unchanged: 0,
      duplicate: 0,
      failed: 0,
      chunks: 0,
      errors: [],
      indexError: null,
      state: "running",
    };
    const show = (): void => setProgress({ ...p, errors: [...p.errors] });
    const fail = (source: string, code: string, message: string): void => {
      p.failed += 1;
      p.errors.push({ source, code, message });
    };
    // A batch refused whole for its size or its content goes again one document at a time.
    const sendDocs = async (docs: DocumentIn[]): Promise<void> => {
      try {
        const answer = await ingest(name, docs, current.signal);
        p.created += answer.created;
        p.updated += answer.updated;
        p.chunks += answer.chunks;
        if (answer.index_error) p.indexError = answer.index_error;
        for (const outcome of answer.documents) {
          if (outcome.status === "unchanged") p.unchanged += 1;
          else if (outcome.status === "duplicate") p.duplicate += 1;
          else if (outcome.status === "failed") fail(outcome.source, outcome.error_code ?? "failed", outcome.error ?? "");
        }
      } catch (caught) {
        if (!(caught instanceof ApiError) || (caught.status !== 413 && caught.status !== 422)) throw caught;
        if (docs.length > 1) {
          for (const doc of docs) await sendDocs([doc]);
        } else {
          fail(docs[0]?.source ?? "", caught.code, caught.detail);
        }
      }
    };
    show();
    try {
      for (const batch of batches(files, BATCH_FILES, BATCH_BYTES)) {
        if (current.signal.aborted) break;
        const docs: DocumentIn[] = [];
        for (const file of batch) {
          try {
            docs.push(await readDocument(file, meta.value));
          } catch (caught) {
            fail(file.name, "unreadable", caught instanceof Error ? caught.message : String(caught));
          }
        }
        if (docs.length > 0) await sendDocs(docs);
        p.done += batch.length;
        show();
      }
      p.state = current.signal.aborted ? "stopped" : "done";
    } catch (caught) {
      if (isAbort(caught)) p.state = "stopped";
      else {
        p.state = "failed";
        setFatal(caught);
      }
    }
    show();
    announce(
      `${STATE_TEXT[p.state]} ${p.done} of ${p.files} files: ${p.created + p.updated} added, ` +
        `${p.unchanged} unchanged, ${p.duplicate} duplicates, ${p.failed} failed.`,
    );
  };

  const totalBytes = files.reduce((sum, f) => sum + f.size, 0);

  return (
    <>
      <form class="mem-form" noValidate onSubmit={(e) => void start(e)} aria-label="Upload files">
        <Field
          id="upload-files"
          label="Files (required)"
          help={
            <>
              Plain text (.txt, .md, .csv, .json, …), HTML and PDF; a <code>.jsonl</code> file is read as a BEIR corpus,
              one document per line. Each file's name is its source; a source sent again replaces its document.
            </>
          }
          error={errors.files}
        >
          <input
            type="file"
            multiple
            accept={TEXT_TYPES}
            disabled={running}
            {...described("upload-files", true, errors.files)}
            aria-required="true"
            onChange={(e) => setFiles(Array.from(e.currentTarget.files ?? []))}
          />
        </Field>
        {files.length > 0 && (
          <p class="muted">
            {plural(files.length, "file")} chosen, {formatBytes(totalBytes)}.
          </p>
        )}
        <Field id="upload-metadata" label="Metadata for every file" help="Optional JSON object; filters see it." error={errors.metadata}>
          <textarea
            class="mono"
            rows={2}
            spellcheck={false}
            placeholder='{"lang": "en"}'
            disabled={running}
            {...described("upload-metadata", true, errors.metadata)}
            value={metadata}
            onInput={(e) => setMetadata(e.currentTarget.value)}
          />
        </Field>
        <div class="actions">
          <button type="submit" class="button primary" disabled={running} aria-busy={running}>
            Upload
          </button>
          {running && (
            <button type="button" class="button" onClick={() => controller.current?.abort()}>
              Stop
            </button>
          )}
        </div>
      </form>

      <ErrorNotice error={fatal} title="The upload stopped" />
      <div class="mem-progress" data-testid="ingest-progress" aria-live="polite">
        {progress && (
          <>
            <p>
              <strong>{STATE_TEXT[progress.state]}</strong> {progress.done.toLocaleString()} / {progress.files.toLocaleString()} files
              done.
            </p>
            <progress
              class="mem-meter"
              value={progress.done}
              max={progress.files}
              aria-label="Files done"
              aria-valuetext={`${progress.done} of ${progress.files} files`}
            />
            <dl class="facts mem-counts">
              <dt>Documents added</dt>
              <dd>
                {(progress.created + progress.updated).toLocaleString()} ({progress.created.toLocaleString()} new,{" "}
                {progress.updated.toLocaleString()} updated)
              </dd>
              <dt>Unchanged</dt>
              <dd>{progress.unchanged.toLocaleString()}</dd>
              <dt>Duplicates</dt>
              <dd>{progress.duplicate.toLocaleString()}</dd>
              <dt>Failed</dt>
              <dd>{progress.failed.toLocaleString()}</dd>
              <dt>Chunks written</dt>
              <dd>{progress.chunks.toLocaleString()}</dd>
            </dl>
            {progress.indexError && (
              <p class="mem-warning">
                Stored, but not in the vector index (keyword search finds them; a reindex repairs it): {progress.indexError}
              </p>
            )}
            {progress.errors.length > 0 && (
              <>
                <h3>Errors</h3>
                <ul class="mem-errors">
                  {progress.errors.slice(0, SHOWN_ERRORS).map((e, i) => (
                    <li key={i}>
                      <strong>{e.source}</strong>: <code>{e.code}</code> {e.message}
                    </li>
                  ))}
                </ul>
                {progress.errors.length > SHOWN_ERRORS && (
                  <p class="muted">{(progress.errors.length - SHOWN_ERRORS).toLocaleString()} more not shown.</p>
                )}
              </>
            )}
          </>
        )}
      </div>
    </>
  );
}
