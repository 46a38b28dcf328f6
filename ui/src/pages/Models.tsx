// Placeholder: replaced by the page itself.
export function Models() {
  return (
    <section>
      <h1 tabIndex={-1}>Models and providers</h1>
    </section>
  );
}
