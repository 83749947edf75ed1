// A real logger (createLogger, JSON format) whose lines are kept in memory,
// parsed, for tests that check what the controller or a worker logged.
import { createLogger, type LogComponent, type Logger, type LogLevel } from "../../src/core/logger.js";

/** One JSON line as the logger wrote it. */
export interface LogRecord {
  level: string;
  time: string;
  component: string;
  event: string;
  msg: string;
  [field: string]: unknown;
}

/** A logger and what it wrote. */
export interface CapturedLogs {
  readonly logger: Logger;
  /** Every line, parsed, in order. */
  readonly records: LogRecord[];
  /** The `msg` of every line, in order. */
  readonly messages: string[];
  /** The lines of one event. */
  events(event: string): LogRecord[];
}

/** A logger for `component` that keeps its lines; debug level by default, so every line is kept. */
export function captureLogs(component: LogComponent = "controller", level: LogLevel = "debug"): CapturedLogs {
  const records: LogRecord[] = [];
  const logger = createLogger({ component, level, format: "json", destination: { write: (line) => void records.push(JSON.parse(line) as LogRecord) } });
  return {
    logger,
    records,
    get messages() {
      return records.map((r) => r.msg);
    },
    events: (event) => records.filter((r) => r.event === event),
  };
}
