// Structured logs of the controller and the worker daemon (docs/logging.md):
// pino underneath, one JSON object per line off a terminal, pino-pretty on one.
import { createRequire } from "node:module";
import { pino } from "pino";
import type { prettyFactory as PrettyFactory } from "pino-pretty";
import { ValidationError, describeValue } from "./errors.js";

/** Levels, least to most severe; `silent` writes nothing. */
export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Line formats: `json` (one object per line), `pretty` (for people), `auto` (pretty on a terminal, else json). */
export const LOG_FORMATS = ["json", "pretty", "auto"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** The component a line comes from, in its `component` field. */
export type LogComponent = "controller" | "worker";

/**
 * The fields of one line: `event`, a stable snake_case name (see
 * docs/logging.md), and the ids and figures that apply (`jobId`,
 * `taskIndex`, `attemptId`, `workerId`, `address`, `reason`, …).
 */
export interface LogFields {
  event: string;
  [field: string]: unknown;
}

/** What the controller and the worker daemon log through; {@link createLogger} makes one. */
export interface Logger {
  debug(fields: LogFields, msg: string): void;
  info(fields: LogFields, msg: string): void;
  warn(fields: LogFields, msg: string): void;
  error(fields: LogFields, msg: string): void;
  /** A logger whose lines all carry `bindings` too (e.g. `{ workerId }`). */
  child(bindings: Record<string, unknown>): Logger;
}

/** Where lines go: a stream, or anything with a `write` taking one line (with its newline) at a time. */
export interface LogDestination {
  write(line: string): unknown;
  /** True for a terminal: `auto` then writes pretty lines. */
  isTTY?: boolean;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** The `component` field of every line. */
  component: LogComponent;
  /** Least severe level written. @default the FLUSTER_LOG_LEVEL environment variable, else "info" */
  level?: LogLevel;
  /** Where lines go. Written synchronously, so nothing is lost when the process exits. @default process.stderr */
  destination?: LogDestination;
  /** `json`, `pretty` (coloured on a terminal), or `auto`: pretty when the destination is a terminal, else json. @default the FLUSTER_LOG_FORMAT environment variable, else "auto" */
  format?: LogFormat;
}

/** Checks a level (from an option, a flag or FLUSTER_LOG_LEVEL); the error names `field` and the value. */
export function checkLogLevel(value: unknown, field = "level"): LogLevel {
  if (typeof value !== "string" || !(LOG_LEVELS as readonly string[]).includes(value)) {
    throw new ValidationError(field, `must be one of ${LOG_LEVELS.join(", ")}, got ${describeValue(value)}`);
  }
  return value as LogLevel;
}

/** Checks a format (from an option, a flag or FLUSTER_LOG_FORMAT); the error names `field` and the value. */
export function checkLogFormat(value: unknown, field = "format"): LogFormat {
  if (typeof value !== "string" || !(LOG_FORMATS as readonly string[]).includes(value)) {
    throw new ValidationError(field, `must be one of ${LOG_FORMATS.join(", ")}, got ${describeValue(value)}`);
  }
  return value as LogFormat;
}

/**
 * A logger for `component`. JSON lines carry `level` (its label), `time`
 * (ISO 8601), `component`, the call's fields and `msg`; pino's `pid` and
 * `hostname` are left out (a worker line names its `workerId`; whoever
 * collects lines from many machines knows which one each came from).
 */
export function createLogger(options: LoggerOptions): Logger {
  if (options.component !== "controller" && options.component !== "worker") {
    throw new ValidationError("component", `must be "controller" or "worker", got ${describeValue(options.component)}`);
  }
  const level = options.level !== undefined ? checkLogLevel(options.level) : checkLogLevel(process.env.FLUSTER_LOG_LEVEL || "info", "FLUSTER_LOG_LEVEL");
  const format = options.format !== undefined ? checkLogFormat(options.format) : checkLogFormat(process.env.FLUSTER_LOG_FORMAT || "auto", "FLUSTER_LOG_FORMAT");
  const destination = options.destination ?? process.stderr;
  const pretty = format === "pretty" || (format === "auto" && destination.isTTY === true);
  return pino(
    {
      level,
      base: { component: options.component },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pretty ? prettyStream(destination) : { write: (line: string) => void destination.write(line) },
  );
}

/**
 * pino-pretty's formatter applied in the writing call, not in a stream
 * pipeline or worker thread, so a line is out before the call returns.
 */
function prettyStream(destination: LogDestination): { write(line: string): void } {
  // Loaded only here: most processes (jobs, programs, piped daemons) never write a pretty line.
  const { prettyFactory } = createRequire(import.meta.url)("pino-pretty") as { prettyFactory: typeof PrettyFactory };
  const format = prettyFactory({
    colorize: destination.isTTY === true,
    translateTime: "SYS:yyyy-mm-dd HH:MM:ss.l",
    ignore: "component",
    messageFormat: "{component}: {msg}",
    singleLine: true,
  });
  return { write: (line) => void destination.write(format(line)) };
}

/** How a controller or worker started as a process (options as JSON) is told to log; {@link loggerFromSettings} reads it. */
export interface LogSettings {
  /** Least severe level written. @default the FLUSTER_LOG_LEVEL environment variable, else "info" */
  logLevel?: LogLevel;
  /** Line format. @default the FLUSTER_LOG_FORMAT environment variable, else "auto" */
  logFormat?: LogFormat;
}

/** A stderr logger for `component` from {@link LogSettings} (also untyped JSON); a bad value fails naming `logLevel` or `logFormat`. */
export function loggerFromSettings(component: LogComponent, settings: { readonly [K in keyof LogSettings]?: unknown }): Logger {
  return createLogger({
    component,
    ...(settings.logLevel !== undefined ? { level: checkLogLevel(settings.logLevel, "logLevel") } : {}),
    ...(settings.logFormat !== undefined ? { format: checkLogFormat(settings.logFormat, "logFormat") } : {}),
  });
}

/** A logger that writes nothing (the default of the parts a program wires itself, e.g. a bare Controller). */
export function silentLogger(): Logger {
  const logger: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => logger };
  return logger;
}

/** Checks that an option given as a logger is one; the error names `field`. */
export function checkLogger(value: unknown, field = "logger"): Logger {
  const candidate = value as Partial<Record<keyof Logger, unknown>> | null;
  if (typeof candidate !== "object" || candidate === null || !(["debug", "info", "warn", "error", "child"] as const).every((m) => typeof candidate[m] === "function")) {
    throw new ValidationError(field, `must be a Logger (debug, info, warn, error and child functions; see createLogger), got ${describeValue(value)}`);
  }
  return value as Logger;
}
