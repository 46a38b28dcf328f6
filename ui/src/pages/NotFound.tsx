export function NotFound({ path }: { path: string }) {
  return (
    <section>
      <h1 tabIndex={-1}>Page not found</h1>
      <p>
        Nothing lives at <code>#{path}</code>. <a href="#/jobs">Go to the job list</a>.
      </p>
    </section>
  );
}
