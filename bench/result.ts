/** One row of bench/results/latest.json. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  /** The same measurement of the reference implementation, in the same run and unit. */
  baseline: number | null;
  /** value / baseline. */
  ratio: number | null;
  /** Target as stated in the issue, e.g. "ratio <= 1.5". */
  target?: string;
  /** Other figures worth keeping (p99, absolute numbers). */
  extra?: Record<string, number | string>;
}

export interface Benchmark {
  name: string;
  /** Other result names this benchmark reports, so that `npm run bench -- <name>` selects it by any of them. */
  reports?: string[];
  run(): Promise<BenchResult[]>;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export function ratio(value: number, baseline: number): number {
  return Math.round((value / baseline) * 1000) / 1000;
}
