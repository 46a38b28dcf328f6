// Placeholder: replaced by the page itself.
export function Memory(_props: { collection: string | null; params: URLSearchParams }) {
  return (
    <section>
      <h1 tabIndex={-1}>Memory</h1>
    </section>
  );
}
