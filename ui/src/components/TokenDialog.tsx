import { useEffect, useRef, useState } from "preact/hooks";
import { getToken, registerTokenDialog, setToken } from "../auth";
import { announce } from "../notices";

/** The "Token" button and its modal dialog: paste an API token (kept in sessionStorage). */
export function TokenDialog() {
  const dialog = useRef<HTMLDialogElement>(null);
  const input = useRef<HTMLInputElement>(null);
  const [value, setValue] = useState("");
  const [hasToken, setHasToken] = useState(() => getToken() !== null);

  const open = (): void => {
    setValue(getToken() ?? "");
    const el = dialog.current;
    if (el && !el.open) el.showModal();
    input.current?.focus();
  };

  useEffect(() => registerTokenDialog(open), []);

  const close = (): void => dialog.current?.close();

  const save = (event: Event): void => {
    event.preventDefault();
    const token = value.trim();
    setToken(token || null);
    setHasToken(token !== "");
    announce(token ? "Token saved for this browser tab." : "Token forgotten.");
    close();
  };

  const forget = (): void => {
    setToken(null);
    setValue("");
    setHasToken(false);
    announce("Token forgotten.");
    close();
  };

  return (
    <>
      <button type="button" class="button" onClick={open} aria-haspopup="dialog" title={hasToken ? "A token is set" : "No token set"}>
        Token
        {hasToken && <span class="dot" aria-hidden="true" />}
      </button>
      <dialog ref={dialog} class="dialog" aria-labelledby="token-title">
        <form onSubmit={save}>
          <h2 id="token-title">Token</h2>
          <p class="help" id="token-help">
            Sent as <code>Authorization: Bearer …</code> with every request. Kept in this tab only
            (session storage); closing the tab forgets it.
          </p>
          <div class="field">
            <label for="token-input">API token</label>
            <input
              ref={input}
              id="token-input"
              type="password"
              autoComplete="off"
              spellcheck={false}
              aria-describedby="token-help"
              value={value}
              onInput={(e) => setValue(e.currentTarget.value)}
            />
          </div>
          <div class="actions">
            <button type="submit" class="button primary">
              Save
            </button>
            <button type="button" class="button" onClick={forget}>
              Forget
            </button>
            <button type="button" class="button quiet" onClick={close}>
              Close
            </button>
          </div>
        </form>
      </dialog>
    </>
  );
}
