// A state as a coloured badge (running, succeeded, failed, healthy, …); the
// colour comes from the stylesheet's `.state-<name>` rule.
/** Props of {@link StateBadge}. */
export interface StateBadgeProps {
  /** The state in lower case, e.g. "running" or "worker failed". */
  state: string;
}

export function StateBadge({ state }: StateBadgeProps) {
  return <span class={`badge state-${state.replace(/\s+/g, "-")}`}>{state}</span>;
}
