// Placeholder: replaced by the page itself.
export function Agents(_props: { name: string | null }) {
  return (
    <section>
      <h1 tabIndex={-1}>Agents</h1>
    </section>
  );
}
