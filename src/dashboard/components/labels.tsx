// A string map (worker attributes, endpoint metadata) as key=value chips, sorted by key.
/** Props of {@link Labels}. */
export interface LabelsProps {
  labels: Readonly<Record<string, string>>;
}

export function Labels({ labels }: LabelsProps) {
  const entries = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return <span class="muted">—</span>;
  return (
    <ul class="labels">
      {entries.map(([key, value]) => (
        <li key={key}>
          <span class="label-key">{key}</span>={value}
        </li>
      ))}
    </ul>
  );
}
