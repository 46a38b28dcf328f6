import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, isAbort, listKinds, submitJob, type JobKind } from "../api";
import { ErrorNotice } from "../components/ErrorNotice";
import { fieldId, SchemaForm } from "../components/SchemaForm";
import { useTokenVersion } from "../hooks";
import { announce } from "../notices";
import { jobHref, navigate } from "../router";
import { collect, fieldOfLoc, fieldsOf, initialValue, type Field, type RawValue } from "../schema";

function initialValues(fields: readonly Field[]): Record<string, RawValue> {
  return Object.fromEntries(fields.map((field) => [field.name, initialValue(field)]));
}

function focusField(name: string | undefined): void {
  if (!name) return;
  requestAnimationFrame(() => document.getElementById(name === "kind" ? "kind-select" : fieldId(name))?.focus());
}

export function JobSubmit({ initialKind }: { initialKind: string | null }) {
  const [kinds, setKinds] = useState<JobKind[] | null>(null);
  const [loadError, setLoadError] = useState<unknown>(null);
  const [kindName, setKindName] = useState<string>("");
  const [values, setValues] = useState<Record<string, RawValue>>({});
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [submitError, setSubmitError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const tokenVersion = useTokenVersion();

  useEffect(() => {
    const controller = new AbortController();
    setLoadError(null);
    listKinds(controller.signal)
      .then((found) => {
        setKinds(found);
        setKindName((current) => {
          if (current && found.some((k) => k.name === current)) return current;
          const wanted = found.find((k) => k.name === initialKind) ?? found[0];
          return wanted?.name ?? "";
        });
      })
      .catch((error) => {
        if (!isAbort(error)) setLoadError(error);
      });
    return () => controller.abort();
  }, [tokenVersion, initialKind]);

  const kind = kinds?.find((k) => k.name === kindName) ?? null;
  // Keyed by content, so reloading the kinds (a new token) keeps what was typed.
  const schemaText = kind ? JSON.stringify(kind.input_schema) : "";
  const fields = useMemo(() => (kind ? fieldsOf(kind.input_schema) : []), [kindName, schemaText]);

  useEffect(() => {
    setValues(initialValues(fields));
    setErrors({});
    setSubmitError(null);
  }, [fields]);

  const onSubmit = async (event: Event): Promise<void> => {
    event.preventDefault();
    if (!kind || busy) return;
    const { input, errors: problems } = collect(fields, values);
    setErrors(problems);
    if (Object.keys(problems).length > 0) {
      setSubmitError(null);
      focusField(Object.keys(problems)[0]);
      return;
    }
    setBusy(true);
    setSubmitError(null);
    try {
      const job = await submitJob(kind.name, input);
      announce(`Job ${job.id} submitted.`);
      navigate(jobHref(job.id));
    } catch (error) {
      setSubmitError(error);
      if (error instanceof ApiError && error.errors.length > 0) {
        const byField: Record<string, string> = {};
        for (const problem of error.errors) {
          const name = fieldOfLoc(problem.loc);
          if (name === null) continue;
          const rest = problem.loc.slice(problem.loc.indexOf(name) + 1).join(".");
          const message = rest ? `${rest}: ${problem.msg}` : problem.msg;
          byField[name] = byField[name] ? `${byField[name]} ${message}` : message;
        }
        setErrors(byField);
        focusField(Object.keys(byField)[0]);
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <section aria-labelledby="submit-title">
      <div class="page-head">
        <h1 id="submit-title" tabIndex={-1}>
          New job
        </h1>
        <a href="#/jobs">Job list</a>
      </div>
      <ErrorNotice error={loadError} title="Could not load the job kinds" />
      {kinds === null && loadError === null && <p class="muted">Loading job kinds…</p>}
      {kinds !== null && kinds.length === 0 && <p>This server has no job kinds.</p>}
      {kinds !== null && kinds.length > 0 && (
        <form class="form" onSubmit={(e) => void onSubmit(e)} noValidate aria-describedby="form-legend">
          <div class="field">
            <label for="kind-select">Kind</label>
            <select
              id="kind-select"
              value={kindName}
              aria-describedby="kind-description"
              aria-invalid={errors.kind ? true : undefined}
              onChange={(e) => setKindName(e.currentTarget.value)}
            >
              {kinds.map((k) => (
                <option key={k.name} value={k.name}>
                  {k.name}
                </option>
              ))}
            </select>
            <p class="help" id="kind-description">
              {kind?.description || "No description."}
              {kind && kind.scopes.length > 0 && (
                <span class="muted">
                  {" "}
                  — needs {kind.scopes.map((s) => <code key={s}>{s}</code>)} besides jobs:write
                </span>
              )}
            </p>
            {errors.kind && <p class="field-error">{errors.kind}</p>}
          </div>
          <p class="muted" id="form-legend">
            Fields marked <span aria-hidden="true">*</span>
            <span class="sr-only">as required</span> are required.
          </p>
          {fields.length === 0 && <p class="muted">This kind takes no input.</p>}
          <SchemaForm
            fields={fields}
            values={values}
            errors={errors}
            onChange={(name, value) => {
              setValues((prev) => ({ ...prev, [name]: value }));
              if (errors[name]) setErrors(({ [name]: _gone, ...rest }) => rest);
            }}
          />
          <ErrorNotice error={submitError} title="The job was not submitted" />
          <div class="actions">
            <button type="submit" class="button primary" disabled={busy} aria-busy={busy}>
              Submit
            </button>
          </div>
        </form>
      )}
    </section>
  );
}
