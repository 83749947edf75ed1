// `parse-prometheus-text-format` ships no types; the metrics tests parse scrapes with it.
declare module "parse-prometheus-text-format" {
  /** One sample: a value (counter, gauge, untyped) or a histogram's buckets, count and sum, with its labels. */
  export interface PrometheusSample {
    labels?: Record<string, string>;
    value?: string;
    buckets?: Record<string, string>;
    count?: string;
    sum?: string;
  }
  /** A metric family as prom2json gives it. */
  export interface PrometheusFamily {
    name: string;
    help: string;
    type: "COUNTER" | "GAUGE" | "HISTOGRAM" | "SUMMARY" | "UNTYPED";
    metrics: PrometheusSample[];
  }
  export default function parsePrometheusTextFormat(text: string): PrometheusFamily[];
}
