// fast-check arbitraries for any protobuf message, built from its descriptor
// by reflection: every field may be absent or set, scalars take edge values
// (huge, negative, empty, unicode, long strings within the servers' limits),
// lists and maps a few entries, oneofs one case or none. Per-field overrides
// keep side effects in check (no npm install, no real command). Shared by
// test/cluster/fuzz.test.ts and bench/fuzz.ts.
import fc from "fast-check";
import { create, ScalarType, type DescField, type DescMessage, type Message } from "@bufbuild/protobuf";

/**
 * Arbitraries replacing the generated ones, by field (`package.Message.field_name`)
 * or by field name alone: an arbitrary, or a function of the generated one
 * (to mix plausible values in rather than replace).
 */
export type FieldOverride = fc.Arbitrary<unknown> | ((generated: fc.Arbitrary<unknown>) => fc.Arbitrary<unknown>);
export type FieldOverrides = Readonly<Record<string, FieldOverride>>;

/** Mostly `plausible` values, now and then the generated ones. */
export const mostly =
  (plausible: fc.Arbitrary<unknown>): FieldOverride =>
  (generated) =>
    fc.oneof({ weight: 9, arbitrary: plausible }, { weight: 1, arbitrary: generated });

export interface MessageArbitraryOptions {
  /** How deep nested messages go before they are left out. @default 3 */
  maxDepth?: number;
  /** Most entries of a list or map. @default 3 */
  maxEntries?: number;
  /** Characters of the long strings mixed in (keep it under the servers' limits). @default 1000 */
  longString?: number;
  overrides?: FieldOverrides;
}

const INT32 = fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.constantFrom(0, 1, -1, 2 ** 31 - 1, -(2 ** 31)));
const UINT32 = fc.oneof(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.constantFrom(0, 1, 2 ** 32 - 1));
const INT64 = fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), fc.constantFrom(0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n)));
const UINT64 = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(0n, 1n, 2n ** 64n - 1n));
const DOUBLE = fc.oneof(fc.double(), fc.constantFrom(0, -0, 1, -1, 0.5, Number.MAX_VALUE, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY));
const FLOAT = fc.oneof(fc.float(), fc.constantFrom(0, 1, -1, Number.NaN, Number.POSITIVE_INFINITY));

function stringArbitrary(long: number): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.string({ maxLength: 12 }) },
    { weight: 2, arbitrary: fc.constantFrom("", " ", "default", "a/b", "..", "job-1", "http://127.0.0.1:1", "\0", "ünïcödé ✓ 🚀", "x".repeat(long)) },
    { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 8 }) },
    { weight: 1, arbitrary: fc.string({ unit: "binary", maxLength: 8 }) },
  );
}

function scalarArbitrary(scalar: ScalarType, long: number): fc.Arbitrary<unknown> {
  switch (scalar) {
    case ScalarType.STRING:
      return stringArbitrary(long);
    case ScalarType.BOOL:
      return fc.boolean();
    case ScalarType.BYTES:
      return fc.uint8Array({ maxLength: 64 });
    case ScalarType.DOUBLE:
      return DOUBLE;
    case ScalarType.FLOAT:
      return FLOAT;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
      return INT64;
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return UINT64;
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return UINT32;
    default:
      return INT32;
  }
}

/** An arbitrary of messages of `schema`, each built with `create`. */
export function messageArbitrary<Desc extends DescMessage>(schema: Desc, options: MessageArbitraryOptions = {}): fc.Arbitrary<Message> {
  const settings = { maxDepth: options.maxDepth ?? 3, maxEntries: options.maxEntries ?? 3, long: options.longString ?? 1000, overrides: options.overrides ?? {} };
  return initArbitrary(schema, settings, 0).map((init) => create(schema, init as never) as Message);
}

interface Settings {
  maxDepth: number;
  maxEntries: number;
  long: number;
  overrides: FieldOverrides;
}

/** An init object for `create`: `{ field: value, oneof: { case, value } }`, each field present or not. */
function initArbitrary(schema: DescMessage, settings: Settings, depth: number): fc.Arbitrary<Record<string, unknown>> {
  const parts: Record<string, fc.Arbitrary<unknown>> = {};
  const required: string[] = [];
  for (const member of schema.members) {
    if (member.kind === "oneof") {
      const cases = member.fields
        .map((field) => ({ field, value: fieldArbitrary(field, settings, depth) }))
        .filter((c): c is { field: DescField; value: fc.Arbitrary<unknown> } => c.value !== undefined)
        .map(({ field, value }) => value.map((v) => ({ case: field.localName, value: v })));
      if (cases.length === 0) continue;
      // A oneof may be overridden as a whole (`package.Message.oneof_name`), with `{ case, value }` values.
      const override = settings.overrides[`${schema.typeName}.${member.name}`];
      const generated = fc.oneof(...cases);
      const chosen = override instanceof fc.Arbitrary ? override : override ? override(generated) : generated;
      parts[member.localName] = fc.oneof({ weight: 5, arbitrary: chosen }, { weight: 1, arbitrary: fc.constant({ case: undefined }) });
      required.push(member.localName);
      continue;
    }
    const value = fieldArbitrary(member, settings, depth);
    if (!value) continue;
    // Nested messages are mostly present: a request is mostly its nested messages.
    if (member.fieldKind === "message") {
      parts[member.localName] = fc.oneof({ weight: 5, arbitrary: value }, { weight: 1, arbitrary: fc.constant(undefined) });
      required.push(member.localName);
    } else {
      parts[member.localName] = value;
    }
  }
  return fc.record(parts, { requiredKeys: required });
}

function fieldArbitrary(field: DescField, settings: Settings, depth: number): fc.Arbitrary<unknown> | undefined {
  const override = settings.overrides[`${field.parent.typeName}.${field.name}`] ?? settings.overrides[field.name];
  if (override instanceof fc.Arbitrary) return override;
  const generated = generatedArbitrary(field, settings, depth);
  return override && generated ? override(generated) : generated;
}

function generatedArbitrary(field: DescField, settings: Settings, depth: number): fc.Arbitrary<unknown> | undefined {
  const entries = { maxLength: settings.maxEntries };
  switch (field.fieldKind) {
    case "scalar":
      return scalarArbitrary(field.scalar, settings.long);
    case "enum":
      return enumArbitrary(field.enum.values.map((v) => v.number));
    case "message":
      return depth >= settings.maxDepth ? undefined : initArbitrary(field.message, settings, depth + 1);
    case "list":
      if (field.listKind === "scalar") return fc.array(scalarArbitrary(field.scalar, settings.long), entries);
      if (field.listKind === "enum") return fc.array(enumArbitrary(field.enum.values.map((v) => v.number)), entries);
      return depth >= settings.maxDepth ? undefined : fc.array(initArbitrary(field.message, settings, depth + 1), entries);
    case "map": {
      const key = field.mapKey === ScalarType.STRING ? stringArbitrary(settings.long) : scalarArbitrary(field.mapKey, settings.long).map(String);
      const value =
        field.mapKind === "scalar"
          ? scalarArbitrary(field.scalar, settings.long)
          : field.mapKind === "enum"
            ? enumArbitrary(field.enum.values.map((v) => v.number))
            : depth >= settings.maxDepth
              ? undefined
              : initArbitrary(field.message, settings, depth + 1);
      if (!value) return undefined;
      return fc.array(fc.tuple(key, value), entries).map((pairs) => Object.fromEntries(pairs));
    }
  }
}

/** Known values mostly, and now and then any int32 (open enums accept unknown ones). */
function enumArbitrary(known: readonly number[]): fc.Arbitrary<number> {
  return fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...known) }, { weight: 1, arbitrary: INT32 });
}
