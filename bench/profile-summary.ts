import type { Profiler } from 'node:inspector';

export interface ProfileSummaryOptions {
  /** Units of work the profile covered (requests, jobs): times are shown per unit. */
  units: number;
  /** Name of one unit, e.g. `req` or `job`. */
  unit: string;
  /** Rows of the inclusive table. */
  inclusive: number;
  /** Rows of the self-time table. @defaultValue 0 (none) */
  self?: number;
}

/**
 * Time per function of a V8 sampling profile, as text: inclusive (the function and all it
 * called, each function counted once per sample) and, if asked, self time, each row as a
 * share of all samples and µs per unit of work. Shared by the bench/profile-*.ts aids.
 */
export function summarizeProfile(profile: Profiler.Profile, o: ProfileSummaryOptions): string {
  const parent = new Map<number, number>();
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (id: number) => {
    const f = byId.get(id)!.callFrame;
    return `${f.functionName || '(anon)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber}`;
  };
  const inclusive = new Map<string, number>();
  const self = new Map<string, number>();
  let total = 0;
  const deltas = profile.timeDeltas ?? [];
  (profile.samples ?? []).forEach((id, i) => {
    const d = deltas[i] ?? 0;
    total += d;
    self.set(key(id), (self.get(key(id)) ?? 0) + d);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) seen.add(key(cur));
    for (const k of seen) inclusive.set(k, (inclusive.get(k) ?? 0) + d);
  });
  const table = (m: Map<string, number>, rows: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, rows)
      .map(([k, t]) => `${((t / total) * 100).toFixed(1).padStart(5)}%  ${(t / o.units).toFixed(1).padStart(7)}us/${o.unit}  ${k}`)
      .join('\n');
  const parts = [`--- inclusive\n${table(inclusive, o.inclusive)}`];
  if (o.self) parts.push(`--- self\n${table(self, o.self)}`);
  return parts.join('\n');
}
