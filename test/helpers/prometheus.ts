// Scraping a server's /metrics in tests: the text, parsed into families (by
// parse-prometheus-text-format, which also checks the format), and its samples
// line by line (that parser drops the count of a histogram with labels).
import assert from "node:assert/strict";
import parsePrometheusTextFormat, { type PrometheusFamily } from "parse-prometheus-text-format";

/** One sample line: `name{labels} value`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A scrape: the raw text, its families and its samples. */
export interface Scrape {
  text: string;
  families: PrometheusFamily[];
  samples: Sample[];
}

/** GETs `<baseUrl>/metrics` with the bearer token (when given); fails the test unless it answers 200 with the text format. */
export async function scrapeMetrics(baseUrl: string, token?: string): Promise<Scrape> {
  const res = await fetch(`${baseUrl}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  const text = await res.text();
  assert.equal(res.status, 200, text);
  assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  return { text, families: parsePrometheusTextFormat(text), samples: parseSamples(text) };
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** The sample lines of the text format. */
export function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = SAMPLE_LINE.exec(line);
    assert.ok(match, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(LABEL)) labels[key!] = value!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The family named `name`; fails the test when the scrape has none. */
export function family(scrape: Scrape, name: string): PrometheusFamily {
  const found = scrape.families.find((f) => f.name === name);
  assert.ok(found, `no metric family ${name} in the scrape`);
  return found;
}

/** The samples of `name` (of a histogram: its `_count` samples) whose labels include `labels`. */
export function series(scrape: Scrape, name: string, labels: Record<string, string> = {}): Sample[] {
  const histogram = scrape.families.find((f) => f.name === name)?.type === "HISTOGRAM";
  const wanted = histogram ? `${name}_count` : name;
  return scrape.samples.filter((s) => s.name === wanted && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/**
 * The sum of the samples of `name` whose labels include `labels` (of a
 * histogram: how many observations); 0 when none matches, as for a counter
 * not incremented yet. Fails the test when the scrape has no such family.
 */
export function sampleValue(scrape: Scrape, name: string, labels: Record<string, string> = {}): number {
  family(scrape, name);
  return series(scrape, name, labels).reduce((sum, s) => sum + s.value, 0);
}
