// `npm run bench [-- name-prefix...]`: runs the benchmarks, prints a table and writes
// bench/results/latest.json. Benchmarks measure; tests never assert timings.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { backfillBench } from './backfill.ts';
import { budgetBench } from './budget.ts';
import { burstBulkBench } from './burst.ts';
import { e2eEventsBench, e2eLagBench } from './e2e.ts';
import { ingestBench } from './ingest.ts';
import { lookupBench } from './lookup.ts';
import { readBench } from './read.ts';
import { redisBytesBench, replicaApplyBench, replicaBootstrapBench, replicaLagBench } from './replica.ts';
import type { BenchResult, Benchmark } from './result.ts';

const benchmarks: Benchmark[] = [
  lookupBench,
  ingestBench,
  e2eEventsBench,
  e2eLagBench,
  burstBulkBench,
  budgetBench,
  readBench,
  backfillBench,
  replicaApplyBench,
  replicaBootstrapBench,
  replicaLagBench,
  redisBytesBench,
];

const filters = process.argv.slice(2);
const selected = benchmarks.filter((b) => filters.length === 0 || filters.some((f) => [b.name, ...(b.reports ?? [])].some((n) => n.startsWith(f))));
const results: BenchResult[] = [];
for (const b of selected) {
  process.stderr.write(`running ${b.name}…\n`);
  results.push(...(await b.run()));
}

const dir = join(import.meta.dirname, 'results');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);

console.log(`\n${new Date().toISOString()} · node ${process.version} · ${cpus().length}× ${cpus()[0]?.model ?? 'cpu'}\n`);
console.table(
  results.map((r) => ({ name: r.name, value: r.value, unit: r.unit, baseline: r.baseline, ratio: r.ratio, target: r.target ?? '', ...r.extra })),
);
