import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, isAbort, JOB_STATES, listJobs, listKinds, type Job, type JobPage } from "../api";
import { ErrorNotice } from "../components/ErrorNotice";
import { StateBadge } from "../components/StateBadge";
import { VirtualList, type Column } from "../components/VirtualList";
import { formatTime, shortId } from "../format";
import { useTokenVersion, useWindowHeight } from "../hooks";
import { hrefWith, jobHref, navigate, replaceHash } from "../router";

const PAGE = 50;
/** Jobs per "Load more" page: the API's most, so 10,000 jobs take 20 pages. */
const MORE = 500;
const REFRESH_MS = 2000;
const ROW_HEIGHT = 40;

interface Listing {
  jobs: Job[];
  cursor: string | null;
}

/** Folds a fresh first page into what is loaded: new jobs on top, changed ones replaced,
 * pages loaded further down kept (unless the fresh page no longer reaches them). */
export function mergeHead(prev: Listing, page: JobPage): Listing {
  if (page.next_cursor === null) return { jobs: page.jobs, cursor: null };
  const fresh = new Set(page.jobs.map((job) => job.id));
  let last = -1;
  prev.jobs.forEach((job, index) => {
    if (fresh.has(job.id)) last = index;
  });
  if (last < 0 || last === prev.jobs.length - 1) return { jobs: page.jobs, cursor: page.next_cursor };
  return { jobs: [...page.jobs, ...prev.jobs.slice(last + 1)], cursor: prev.cursor };
}

const jobKey = (job: Job): string => job.id;
const open = (job: Job): void => navigate(jobHref(job.id));

const COLUMNS: Column<Job>[] = [
  {
    id: "id",
    header: "ID",
    cell: (job) => (
      <a href={jobHref(job.id)} tabIndex={-1} title={job.id} class="mono">
        {shortId(job.id)}
      </a>
    ),
  },
  { id: "kind", header: "Kind", cell: (job) => job.kind },
  { id: "state", header: "State", cell: (job) => <StateBadge state={job.state} /> },
  { id: "attempts", header: "Attempts", cell: (job) => `${job.attempts} / ${job.max_attempts}`, class: "num" },
  { id: "created", header: "Created", cell: (job) => <time dateTime={job.created_at}>{formatTime(job.created_at)}</time> },
  {
    id: "finished",
    header: "Finished",
    cell: (job) => (job.finished_at ? <time dateTime={job.finished_at}>{formatTime(job.finished_at)}</time> : "—"),
  },
  { id: "error", header: "Error", cell: (job) => (job.error_code ? <code>{job.error_code}</code> : "—") },
];
const TEMPLATE = "6.5rem minmax(6rem, 1fr) 8rem 6.5rem 12.5rem 12.5rem minmax(8rem, 1fr)";

function CheckboxGroup(props: {
  legend: string;
  name: string;
  options: readonly string[];
  selected: readonly string[];
  onChange(next: string[]): void;
}) {
  const toggle = (option: string, on: boolean): void =>
    props.onChange(on ? [...props.selected, option] : props.selected.filter((s) => s !== option));
  return (
    <fieldset class="checks">
      <legend>{props.legend}</legend>
      {props.options.map((option) => (
        <label key={option}>
          <input
            type="checkbox"
            name={props.name}
            value={option}
            checked={props.selected.includes(option)}
            onChange={(e) => toggle(option, e.currentTarget.checked)}
          />
          {option}
        </label>
      ))}
    </fieldset>
  );
}

function retryable(error: unknown): boolean {
  return !(error instanceof ApiError) || error.status === 0 || error.status === 429 || error.status >= 500;
}

/** The job list; its filters live in the URL (`#/jobs?state=running&kind=chat`), so a link or
 * a reload keeps them. */
export function JobList({ params }: { params: URLSearchParams }) {
  const [states, setStates] = useState<string[]>(() => params.getAll("state"));
  const [kinds, setKinds] = useState<string[]>(() => params.getAll("kind"));
  const [kindNames, setKindNames] = useState<string[]>([]);
  const [listing, setListing] = useState<Listing | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [attempt, setAttempt] = useState(0);
  const tokenVersion = useTokenVersion();
  const windowHeight = useWindowHeight();
  const listingRef = useRef(listing);
  listingRef.current = listing;
  const loadingMoreRef = useRef(false);

  const filterKey = JSON.stringify([states, kinds]);
  const query = params.toString();

  // A navigation to other filters (a link, the address bar, back and forward) sets them.
  useEffect(() => {
    setStates(params.getAll("state"));
    setKinds(params.getAll("kind"));
  }, [query]);

  useEffect(() => replaceHash(hrefWith("jobs", { state: states, kind: kinds })), [filterKey]);

  useEffect(() => {
    const controller = new AbortController();
    listKinds(controller.signal)
      .then((found) => setKindNames(found.map((k) => k.name)))
      .catch(() => setKindNames([])); // the kind filter is then just absent
    return () => controller.abort();
  }, [tokenVersion]);

  // First page, then a refresh of the head every 2 s while the page is visible.
  useEffect(() => {
    const controller = new AbortController();
    let alive = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let inFlight = false;
    let first = true;
    setListing(null);
    setError(null);

    const schedule = (): void => {
      clearTimeout(timer);
      timer = undefined;
      if (alive && !document.hidden) timer = setTimeout(tick, REFRESH_MS);
    };

    async function tick(): Promise<void> {
      timer = undefined;
      if (!alive || document.hidden || inFlight) return;
      if (loadingMoreRef.current) return schedule();
      inFlight = true;
      try {
        const page = await listJobs({ states, kinds, limit: PAGE }, controller.signal);
        if (!alive) return;
        const wasFirst = first;
        first = false;
        setListing((prev) => (prev === null || wasFirst ? { jobs: page.jobs, cursor: page.next_cursor } : mergeHead(prev, page)));
        setError(null);
      } catch (caught) {
        if (!alive || isAbort(caught)) return;
        setError(caught);
        if (!retryable(caught)) return; // e.g. 401: wait for a new token
      } finally {
        inFlight = false;
      }
      schedule();
    }

    const onVisibility = (): void => {
      if (document.hidden) {
        clearTimeout(timer);
        timer = undefined;
      } else if (timer === undefined && !inFlight) {
        void tick();
      }
    };
    document.addEventListener("visibilitychange", onVisibility);
    void tick();
    return () => {
      alive = false;
      clearTimeout(timer);
      controller.abort();
      document.removeEventListener("visibilitychange", onVisibility);
    };
  }, [filterKey, tokenVersion, attempt]);

  const loadMore = async (): Promise<void> => {
    const cursor = listingRef.current?.cursor;
    if (!cursor || loadingMoreRef.current) return;
    loadingMoreRef.current = true;
    setLoadingMore(true);
    try {
      const page = await listJobs({ states, kinds, limit: MORE, cursor });
      setListing((prev) => {
        if (prev === null || prev.cursor !== cursor) return prev; // replaced meanwhile
        const seen = new Set(prev.jobs.map((job) => job.id));
        return { jobs: [...prev.jobs, ...page.jobs.filter((job) => !seen.has(job.id))], cursor: page.next_cursor };
      });
    } catch (caught) {
      setError(caught);
    } finally {
      loadingMoreRef.current = false;
      setLoadingMore(false);
    }
  };

  const filtered = states.length > 0 || kinds.length > 0;

  return (
    <section aria-labelledby="jobs-title">
      <div class="page-head">
        <h1 id="jobs-title" tabIndex={-1}>
          Jobs
        </h1>
        <a class="button primary" href="#/jobs/new">
          New job
        </a>
      </div>

      <div class="filters">
        <CheckboxGroup legend="State" name="state" options={JOB_STATES} selected={states} onChange={setStates} />
        {kindNames.length > 0 && (
          <CheckboxGroup legend="Kind" name="kind" options={kindNames} selected={kinds} onChange={setKinds} />
        )}
        {filtered && (
          <button
            type="button"
            class="button quiet"
            onClick={() => {
              setStates([]);
              setKinds([]);
            }}
          >
            Clear filters
          </button>
        )}
      </div>

      {error !== null && (
        <div class="stack">
          <ErrorNotice error={error} title={listing === null ? "Could not load jobs" : "Could not refresh jobs"} />
          {!retryable(error) && (
            <button type="button" class="button" onClick={() => setAttempt((a) => a + 1)}>
              Retry
            </button>
          )}
        </div>
      )}

      {listing === null && error === null && (
        <p class="muted" role="status">
          Loading jobs…
        </p>
      )}

      {listing !== null && listing.jobs.length === 0 && (
        <div class="empty">
          {filtered ? (
            <p>No jobs match these filters.</p>
          ) : (
            <>
              <p>No jobs yet.</p>
              <p>
                <a href="#/jobs/new">Submit a job</a> to see it here.
              </p>
            </>
          )}
        </div>
      )}

      {listing !== null && listing.jobs.length > 0 && (
        <>
          <p class="muted" id="jobs-count">
            {listing.jobs.length} {listing.jobs.length === 1 ? "job" : "jobs"} loaded
            {listing.cursor ? ", more available" : ""}. Live: refreshed every 2 seconds.
          </p>
          <VirtualList
            key={filterKey}
            id="job-grid"
            label="Jobs"
            items={listing.jobs}
            columns={COLUMNS}
            template={TEMPLATE}
            minWidth="62rem"
            getKey={jobKey}
            rowHeight={ROW_HEIGHT}
            maxHeight={Math.max(280, windowHeight - 320)}
            rowTestId="job-row"
            onActivate={open}
          />
          {listing.cursor && (
            <p>
              <button type="button" class="button" onClick={() => void loadMore()} disabled={loadingMore} aria-busy={loadingMore}>
                Load more
              </button>
            </p>
          )}
        </>
      )}
    </section>
  );
}
