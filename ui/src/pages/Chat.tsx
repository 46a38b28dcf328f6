// Placeholder: replaced by the page itself.
export function Chat(_props: { params: URLSearchParams }) {
  return (
    <section>
      <h1 tabIndex={-1}>Chat</h1>
    </section>
  );
}
