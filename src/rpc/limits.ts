// Size limits on what a server accepts: how many bytes a request may have,
// how long its strings and how many entries its lists and maps. One generic
// check walks any request message by protobuf reflection, so every RPC of
// every service is bounded without a line in its handler.
import { ScalarType, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";
import { reflect, type ReflectList, type ReflectMap, type ReflectMessage } from "@bufbuild/protobuf/reflect";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { ValidationError } from "../core/errors.js";
import { checkPositive } from "../core/validate.js";

/** Limits on the requests a server accepts. Every field has a default; see {@link DEFAULT_REQUEST_LIMITS}. */
export interface RequestLimits {
  /** Bytes of one request message (after decompression); larger ones get `resource_exhausted`. @default 8 MiB */
  maxRequestBytes: number;
  /**
   * Characters of an identifier-like string: a field named `…_id`, `…_ids`,
   * `name`, `namespace`, `address`, `prefix`, `sha256`, and every map key.
   * @default 1024
   */
  maxIdLength: number;
  /** Characters of any other string (argv and env entries, metadata values, messages). @default 65536 */
  maxStringLength: number;
  /** Entries of one repeated field or map. @default 100000 */
  maxListEntries: number;
}

export const DEFAULT_REQUEST_LIMITS: Readonly<RequestLimits> = Object.freeze({
  maxRequestBytes: 8 * 1024 * 1024,
  maxIdLength: 1024,
  maxStringLength: 65_536,
  maxListEntries: 100_000,
});

/** Field names whose strings are identifiers, names or addresses: short by nature. */
const ID_FIELD = /(^|_)(id|ids|name|namespace|address|prefix|sha256)$/;

/** The defaults with `given` on top; each given value must be a positive whole number. */
export function compileRequestLimits(given: Partial<RequestLimits> = {}): RequestLimits {
  const limits = { ...DEFAULT_REQUEST_LIMITS, ...given };
  for (const key of Object.keys(DEFAULT_REQUEST_LIMITS) as (keyof RequestLimits)[]) {
    const value = checkPositive(limits[key], key);
    if (!Number.isSafeInteger(value)) throw new ValidationError(key, `must be a whole number, got ${value}`);
  }
  return limits;
}

/**
 * Throws a ValidationError (→ `invalid_argument`) naming the first field of
 * `message` that breaks a limit, with the limit's name and value.
 */
export function checkMessageLimits(schema: DescMessage, message: Message, limits: RequestLimits): void {
  walk(reflect(schema, message, false), "", limits);
}

function walk(r: ReflectMessage, path: string, limits: RequestLimits): void {
  for (const field of r.fields) {
    if (!r.isSet(field)) continue;
    const name = path ? `${path}.${field.jsonName}` : field.jsonName;
    const stringLimit = ID_FIELD.test(field.name) ? idLimit(limits) : stringLimitOf(limits);
    switch (field.fieldKind) {
      case "scalar":
        if (field.scalar === ScalarType.STRING) checkLength(r.get(field) as string, name, stringLimit);
        break;
      case "message":
        walk(r.get(field) as ReflectMessage, name, limits);
        break;
      case "list": {
        const list = r.get(field) as ReflectList;
        checkEntries(list.size, name, limits);
        let i = 0;
        for (const value of list) {
          if (field.listKind === "scalar" && field.scalar === ScalarType.STRING) checkLength(value as string, `${name}[${i}]`, stringLimit);
          else if (field.listKind === "message") walk(value as ReflectMessage, `${name}[${i}]`, limits);
          i++;
        }
        break;
      }
      case "map":
        walkMap(field, r.get(field) as ReflectMap, name, limits);
        break;
      default:
        break;
    }
  }
}

function walkMap(field: DescField & { fieldKind: "map" }, map: ReflectMap, name: string, limits: RequestLimits): void {
  checkEntries(map.size, name, limits);
  for (const [key, value] of map) {
    const keyText = String(key);
    if (typeof key === "string") checkLength(key, `${name} key ${JSON.stringify(keyText.slice(0, 40))}…`, idLimit(limits));
    const entry = `${name}[${JSON.stringify(keyText.slice(0, 40))}]`;
    if (field.mapKind === "scalar" && field.scalar === ScalarType.STRING) checkLength(value as string, entry, stringLimitOf(limits));
    else if (field.mapKind === "message") walk(value as ReflectMessage, entry, limits);
  }
}

type Limit = { value: number; name: keyof RequestLimits };
const idLimit = (limits: RequestLimits): Limit => ({ value: limits.maxIdLength, name: "maxIdLength" });
const stringLimitOf = (limits: RequestLimits): Limit => ({ value: limits.maxStringLength, name: "maxStringLength" });

function checkLength(text: string, field: string, limit: Limit): void {
  if (text.length > limit.value) {
    throw new ValidationError(field, `is ${text.length} characters long, above the limit of ${limit.value} (${limit.name})`);
  }
}

function checkEntries(size: number, field: string, limits: RequestLimits): void {
  if (size > limits.maxListEntries) {
    throw new ValidationError(field, `has ${size} entries, above the limit of ${limits.maxListEntries} (maxListEntries)`);
  }
}

/**
 * A server interceptor that checks every request message (each message of a
 * client stream too) against `limits` before the handler sees it.
 */
export function requestLimitsInterceptor(limits: RequestLimits): Interceptor {
  const check = (schema: DescMessage, message: Message) => {
    try {
      checkMessageLimits(schema, message, limits);
    } catch (err) {
      throw new ConnectError((err as Error).message, Code.InvalidArgument);
    }
  };
  return (next) => (req) => {
    if (!req.stream) {
      check(req.method.input, req.message);
      return next(req);
    }
    const messages = req.message;
    async function* checked() {
      for await (const message of messages) {
        check(req.method.input, message);
        yield message;
      }
    }
    return next({ ...req, message: checked() });
  };
}
