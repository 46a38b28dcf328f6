// Placeholder: replaced by the page itself.
export function Tokens() {
  return (
    <section>
      <h1 tabIndex={-1}>Tokens and workspaces</h1>
    </section>
  );
}
