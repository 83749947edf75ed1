// Piscina worker for bench/pool.bench.ts: the same trivial task as WorkerPool's.
export default function square(x) {
  return x * x;
}
