// Placeholder: replaced by the page itself.
export function VMs() {
  return (
    <section>
      <h1 tabIndex={-1}>VMs</h1>
    </section>
  );
}
