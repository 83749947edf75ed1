// The sign-in view shown instead of any data when the controller refuses a
// call: why (no token, or a wrong one), the controller's hint on where the
// token is, and a field to paste it.
import { useState } from "preact/hooks";
import type { Refusal } from "../api.js";

/** Props of {@link SignIn}. */
export interface SignInProps {
  refusal: Refusal;
  /** Called with the token typed in. */
  onSubmit(token: string): void;
}

export function SignIn({ refusal, onSubmit }: SignInProps) {
  const [token, setToken] = useState("");
  return (
    <section class="sign-in" data-testid="sign-in" aria-labelledby="sign-in-heading">
      <h1 id="sign-in-heading">Sign in</h1>
      {refusal.reason === "wrong" ? (
        <p class="error" role="alert" data-testid="refused">
          The controller refused the token: {refusal.hint}
        </p>
      ) : (
        <p>
          This controller requires a token: <span class="hint">{refusal.hint}</span>
        </p>
      )}
      <p class="muted">Paste the token below.</p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          const trimmed = token.trim();
          if (trimmed) onSubmit(trimmed);
        }}
      >
        <label>
          Token <input type="password" name="token" autoComplete="current-password" value={token} onInput={(e) => setToken(e.currentTarget.value)} required />
        </label>
        <button type="submit">Sign in</button>
      </form>
      <p class="muted small">The token is kept in this tab only (sessionStorage) and sent as a bearer token with each call.</p>
    </section>
  );
}
