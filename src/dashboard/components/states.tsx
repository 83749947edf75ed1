// The states a page shows besides its data: loading, a failed RPC (named), and
// an empty list with a hint on what to do.
import type { ComponentChildren } from "preact";

export function Loading() {
  return <p class="muted" aria-busy="true">loading…</p>;
}

/** Props of {@link ErrorState}. */
export interface ErrorStateProps {
  /** What failed, naming the RPC (from describeFailure). */
  message: string;
}

export function ErrorState({ message }: ErrorStateProps) {
  return (
    <p class="error" role="alert">
      {message}
    </p>
  );
}

/** Props of {@link EmptyState}. */
export interface EmptyStateProps {
  children: ComponentChildren;
}

export function EmptyState({ children }: EmptyStateProps) {
  return <p class="empty">{children}</p>;
}
