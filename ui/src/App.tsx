import { useEffect, useRef, useState } from "preact/hooks";
import { TokenDialog } from "./components/TokenDialog";
import { onAnnounce } from "./notices";
import { JobDetail } from "./pages/JobDetail";
import { JobList } from "./pages/JobList";
import { JobSubmit } from "./pages/JobSubmit";
import { Agents } from "./pages/Agents";
import { Chat } from "./pages/Chat";
import { Memory } from "./pages/Memory";
import { Models } from "./pages/Models";
import { NotFound } from "./pages/NotFound";
import { Tokens } from "./pages/Tokens";
import { VMs } from "./pages/VMs";
import { SECTIONS, sectionOf, useRoute, type Route } from "./router";
import { useTheme } from "./theme";

/** Which page instance a route shows: a new key mounts a fresh page (query changes do not). */
function routeKey(route: Route): string {
  switch (route.page) {
    case "job":
      return `job:${route.id}`;
    case "memory":
      return `memory:${route.collection ?? ""}`;
    case "agents":
      return `agents:${route.name ?? ""}`;
    default:
      return route.page;
  }
}

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case "jobs":
      return <JobList params={route.params} />;
    case "new":
      return <JobSubmit initialKind={route.kind} />;
    case "job":
      return <JobDetail id={route.id} />;
    case "chat":
      return <Chat params={route.params} />;
    case "memory":
      return <Memory collection={route.collection} params={route.params} />;
    case "agents":
      return <Agents name={route.name} />;
    case "models":
      return <Models />;
    case "vms":
      return <VMs />;
    case "tokens":
      return <Tokens />;
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

  const section = sectionOf(route);

  return (
    <>
      <a class="skip-link" href="#main" onClick={skip}>
        Skip to content
      </a>
      <header class="app-header">
        <span class="brand">ember</span>
        <nav aria-label="Main">
          <ul>
            {SECTIONS.map((item) => (
              <li key={item.page}>
                <a href={item.href} aria-current={section === item.page ? "page" : undefined}>
                  {item.label}
                </a>
              </li>
            ))}
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
