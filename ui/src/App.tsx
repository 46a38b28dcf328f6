import { useEffect, useRef, useState } from "preact/hooks";
import { TokenDialog } from "./components/TokenDialog";
import { onAnnounce } from "./notices";
import { JobDetail } from "./pages/JobDetail";
import { JobList } from "./pages/JobList";
import { JobSubmit } from "./pages/JobSubmit";
import { NotFound } from "./pages/NotFound";
import { useRoute, type Route } from "./router";
import { useTheme } from "./theme";

function routeKey(route: Route): string {
  return route.page === "job" ? `job:${route.id}` : route.page;
}

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case "jobs":
      return <JobList />;
    case "new":
      return <JobSubmit initialKind={route.kind} />;
    case "job":
      return <JobDetail id={route.id} />;
    case "not-found":
      return <NotFound path={route.path} />;
  }
}

function StatusRegion() {
  const [message, setMessage] = useState("");
  useEffect(() => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const off = onAnnounce((text) => {
      setMessage(text);
      clearTimeout(timer);
      timer = setTimeout(() => setMessage(""), 6000);
    });
    return () => {
      off();
      clearTimeout(timer);
    };
  }, []);
  return (
    <div class={message ? "toast visible" : "toast"} role="status" aria-live="polite">
      {message}
    </div>
  );
}

export function App() {
  const route = useRoute();
  const [theme, setTheme] = useTheme();
  const main = useRef<HTMLElement>(null);
  const key = routeKey(route);
  const first = useRef(true);

  // On route change, move focus to the new page's h1.
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    const heading = main.current?.querySelector<HTMLElement>("h1");
    heading?.focus();
  }, [key]);

  const skip = (event: Event): void => {
    event.preventDefault();
    const heading = main.current?.querySelector<HTMLElement>("h1");
    (heading ?? main.current)?.focus();
  };

  const onJobs = route.page === "jobs" || route.page === "job";

  return (
    <>
      <a class="skip-link" href="#main" onClick={skip}>
        Skip to content
      </a>
      <header class="app-header">
        <span class="brand">ember</span>
        <nav aria-label="Main">
          <ul>
            <li>
              <a href="#/jobs" aria-current={onJobs || route.page === "new" ? "page" : undefined}>
                Jobs
              </a>
            </li>
          </ul>
        </nav>
        <div class="header-tools">
          <button
            type="button"
            class="button quiet"
            aria-pressed={theme === "dark"}
            onClick={() => setTheme(theme === "dark" ? "light" : "dark")}
          >
            Dark theme
          </button>
          <TokenDialog />
        </div>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        <Page key={key} route={route} />
      </main>
      <StatusRegion />
    </>
  );
}
