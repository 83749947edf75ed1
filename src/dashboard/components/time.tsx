// Times measured on the controller's clock (the live feed's `now`): how long
// something has run, and how long ago something happened.
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { dateOf, elapsedMs, formatAge, formatDuration, formatTime } from "../format.js";
import { useSession } from "../session.js";

/** Props of {@link Duration}. */
export interface DurationProps {
  start: Timestamp | undefined;
  end: Timestamp | undefined;
}

/** From start to end, or to now while running; "—" before the start. */
export function Duration({ start, end }: DurationProps) {
  const { now } = useSession();
  const ms = elapsedMs(dateOf(start), dateOf(end), now);
  return <span>{ms === undefined ? "—" : formatDuration(ms)}</span>;
}

/** Props of {@link Age}. */
export interface AgeProps {
  at: Timestamp | undefined;
}

/** "n s ago", with the absolute time as a tooltip. */
export function Age({ at }: AgeProps) {
  const { now } = useSession();
  const date = dateOf(at);
  return <time title={formatTime(date)}>{formatAge(date, now)}</time>;
}

/** Props of {@link Time}. */
export interface TimeProps {
  at: Timestamp | undefined;
}

/** An absolute local time. */
export function Time({ at }: TimeProps) {
  return <time>{formatTime(dateOf(at))}</time>;
}
