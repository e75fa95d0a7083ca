import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { createMetrics } from '../src/http/metrics.ts';
import { PipelineStats } from '../src/stats.ts';
import { tempDir } from './helpers/fixtures.ts';
import { settle, signed, startHarness, type Harness } from './helpers/pipeline.ts';

/**
 * ops/: the Prometheus alert rules and the Grafana dashboard. Every metric and label their
 * PromQL names must exist in the /metrics of a running service with every role, so a renamed
 * metric breaks this test rather than a dashboard in production.
 */

const ROOT = join(import.meta.dirname, '..');
const ALERTS_FILE = join(ROOT, 'ops/prometheus-alerts.yml');
const ALERT_TESTS_FILE = join(ROOT, 'ops/prometheus-alerts.test.yml');
const DASHBOARD_FILE = join(ROOT, 'ops/grafana-dashboard.json');
const API_KEY = 'ops-files-api-key-0123456789abcdef';

// ---------------------------------------------------------------------------------------------
// A small PromQL reader: enough to find every vector selector and its label matchers.

interface Matcher {
  label: string;
  op: string;
  value: string;
}
interface Selector {
  name: string;
  matchers: Matcher[];
}

const TOKEN = new RegExp(
  [
    /(?<space>\s+|#[^\n]*)/,
    /(?<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)/,
    /(?<var>\$\{[^}]*\}|\$\w+)/,
    // Numbers and durations (1e3, 0.99, 5m, 1h30m): never names.
    /(?<num>0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?(?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?)/,
    /(?<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)/,
    /(?<op>=~|!~|!=|==|>=|<=|[-+*/%^=<>@,(){}[\]:])/,
  ]
    .map((r) => r.source)
    .join('|'),
  'y',
);

type Token = { kind: 'str' | 'var' | 'num' | 'ident' | 'op'; text: string };

function tokenize(expr: string): Token[] {
  const out: Token[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < expr.length) {
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(expr);
    if (!m?.groups) throw new Error(`cannot read PromQL at ${at}: ${JSON.stringify(expr.slice(at, at + 30))}`);
    const kind = (['str', 'var', 'num', 'ident', 'op'] as const).find((k) => m.groups![k] !== undefined);
    if (kind) out.push({ kind, text: m[0] });
  }
  return out;
}

/** Words followed by a parenthesised list of label names, not of expressions. */
const LABEL_LISTS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
const KEYWORDS = new Set(['and', 'or', 'unless', 'offset', 'bool', 'atan2', 'inf', 'nan']);
const AGGREGATORS = new Set(['sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile', 'limitk', 'limit_ratio']);

function unquote(s: string): string {
  if (s.startsWith('`')) return s.slice(1, -1);
  return s.slice(1, -1).replace(/\\(.)/g, '$1');
}

/** Every vector selector of `expr` (metric name and matchers), in order. Functions, keywords, label lists and durations are not selectors. */
export function selectorsOf(expr: string): Selector[] {
  const t = tokenize(expr);
  const out: Selector[] = [];
  const skipTo = (i: number, open: string, close: string) => {
    let depth = 0;
    for (; i < t.length; i++) {
      if (t[i]!.text === open) depth++;
      else if (t[i]!.text === close && --depth === 0) return i;
    }
    throw new Error(`unbalanced ${open} in ${expr}`);
  };
  const matchers = (i: number, into: Matcher[]) => {
    // t[i] is '{'; returns the index of '}'.
    for (i++; t[i] && t[i]!.text !== '}'; i++) {
      if (t[i]!.text === ',') continue;
      const label = t[i];
      const op = t[i + 1];
      const value = t[i + 2];
      if (label?.kind !== 'ident' || op?.kind !== 'op' || value?.kind !== 'str') throw new Error(`cannot read the label matchers of ${expr}`);
      into.push({ label: label.text, op: op.text, value: unquote(value.text) });
      i += 2;
    }
    if (!t[i]) throw new Error(`unbalanced { in ${expr}`);
    return i;
  };
  for (let i = 0; i < t.length; i++) {
    const tok = t[i]!;
    const next = t[i + 1];
    if (tok.text === '[') {
      i = skipTo(i, '[', ']');
      continue;
    }
    if (tok.text === '{') {
      const sel: Selector = { name: '', matchers: [] };
      i = matchers(i, sel.matchers);
      sel.name = sel.matchers.find((m) => m.label === '__name__' && m.op === '=')?.value ?? '';
      out.push(sel);
      continue;
    }
    if (tok.kind !== 'ident') continue;
    const word = tok.text.toLowerCase();
    if (LABEL_LISTS.has(word)) {
      if (next?.text === '(') i = skipTo(i + 1, '(', ')');
      continue;
    }
    if (KEYWORDS.has(word) || AGGREGATORS.has(word) || next?.text === '(') continue;
    const sel: Selector = { name: tok.text, matchers: [] };
    if (next?.text === '{') i = matchers(i + 1, sel.matchers);
    out.push(sel);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// What a /metrics text exposes.

interface Family {
  type: string;
  /** Label names seen on samples or declared by the metric. */
  labels: Set<string>;
  /** Label values seen on samples, by label. */
  values: Map<string, Set<string>>;
}
type Catalogue = Map<string, Family>;

/** Families from `# TYPE` lines (present even before a labelled metric has a sample), labels and values from sample lines. */
export function catalogueOf(text: string, declared: ReadonlyMap<string, readonly string[]> = new Map()): Catalogue {
  const cat: Catalogue = new Map();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    cat.set(name!, { type: type!, labels: new Set(declared.get(name!) ?? []), values: new Map() });
  }
  for (const [, name, labels] of text.matchAll(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? \S+/gm)) {
    const fam = cat.get(name!) ?? cat.get(name!.replace(/_(bucket|count|sum)$/, ''));
    if (!fam || !labels) continue;
    for (const [, label, value] of labels.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      if (label === 'le' || label === 'quantile') continue;
      fam.labels.add(label!);
      let vs = fam.values.get(label!);
      if (!vs) fam.values.set(label!, (vs = new Set()));
      vs.add(value!);
    }
  }
  return cat;
}

/** Labels Prometheus adds to every scraped series. */
const TARGET_LABELS = new Set(['job', 'instance']);
/** Series Prometheus makes itself, not the service. */
const PROMETHEUS_SERIES = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped', 'ALERTS', 'ALERTS_FOR_STATE']);
/** Labels whose every value the service exposes at every scrape: a matcher on another value is a typo. */
const CLOSED_LABELS: Record<string, string> = {
  clerk_mirror_queue_jobs: 'state',
  clerk_mirror_replica_state: 'state',
  clerk_mirror_jobs_total: 'outcome',
};

/** The family `name` queries, and the labels its series have beyond the family's. */
function resolve(name: string, cat: Catalogue): { family: string; extra: string[] } | string {
  const fam = cat.get(name);
  if (fam) {
    if (fam.type === 'histogram') return `${name} is a histogram: query ${name}_bucket, ${name}_count or ${name}_sum`;
    return { family: name, extra: fam.type === 'summary' ? ['quantile'] : [] };
  }
  const suffix = /_(bucket|count|sum)$/.exec(name);
  if (suffix) {
    const base = name.slice(0, suffix.index);
    const type = cat.get(base)?.type;
    if (type === 'histogram' || (type === 'summary' && suffix[1] !== 'bucket')) return { family: base, extra: suffix[1] === 'bucket' ? ['le'] : [] };
  }
  return `unknown metric ${name}`;
}

/** What is wrong with the metrics and labels `expr` names (empty when nothing). */
export function problemsOf(expr: string, cat: Catalogue): string[] {
  const problems: string[] = [];
  let selectors: Selector[];
  try {
    selectors = selectorsOf(expr);
  } catch (err) {
    return [(err as Error).message];
  }
  if (selectors.length === 0) problems.push(`no metric in ${expr}`);
  for (const { name, matchers } of selectors) {
    if (!name) {
      problems.push(`a selector without a metric name in ${expr}`);
      continue;
    }
    if (PROMETHEUS_SERIES.has(name)) continue;
    const r = resolve(name, cat);
    if (typeof r === 'string') {
      problems.push(r);
      continue;
    }
    const fam = cat.get(r.family)!;
    for (const m of matchers) {
      if (m.label === '__name__' || TARGET_LABELS.has(m.label) || r.extra.includes(m.label)) continue;
      if (!fam.labels.has(m.label)) {
        problems.push(`${name} has no label ${m.label} (it has: ${[...fam.labels].join(', ') || 'none'})`);
        continue;
      }
      const seen = CLOSED_LABELS[r.family] === m.label ? fam.values.get(m.label) : undefined;
      if (!seen || m.value.includes('$')) continue;
      const wanted = m.op === '=' || m.op === '!=' ? [m.value] : /^[\w|]+$/.test(m.value) ? m.value.split('|') : [];
      for (const v of wanted) if (!seen.has(v)) problems.push(`${name}{${m.label}="${v}"} never exists (${m.label} is one of ${[...seen].join(', ')})`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// The files.

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
const rulesFile = parseYaml(readFileSync(ALERTS_FILE, 'utf8')) as { groups: { name: string; rules: Rule[] }[] };
const rules = rulesFile.groups.flatMap((g) => g.rules);
const alerts = rules.filter((r) => r.alert);

interface Target {
  expr?: string;
  refId?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
  datasource?: { type?: string; uid?: string };
}
const dashboard = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8')) as { uid: string; title: string; schemaVersion: number; panels: Panel[]; templating: { list: Variable[] } };
const allPanels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const dataPanels = allPanels.filter((p) => p.type !== 'row');
const variables = dashboard.templating.list;
const queryOf = (v: Variable) => (typeof v.query === 'string' ? v.query : v.query.query);

/** The PromQL of a `label_values(selector, label)` variable query, as an expression of its own. */
function variableExprs(v: Variable): string[] {
  if (v.type !== 'query') return [];
  const m = /^label_values\((.*),\s*([a-zA-Z_]\w*)\)$/.exec(queryOf(v).trim());
  if (!m) return [queryOf(v)];
  return [`${m[1]}`, `count by (${m[2]}) (${m[1]})`];
}

const exprs: { where: string; expr: string }[] = [
  ...alerts.map((a) => ({ where: `alert ${a.alert}`, expr: a.expr })),
  ...dataPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel ${p.id} "${p.title}" ${t.refId}`, expr: t.expr ?? '' }))),
  ...variables.flatMap((v) => variableExprs(v).map((expr) => ({ where: `variable ${v.name}`, expr }))),
];

/** Grafana's variables replaced by values, so the dashboard's PromQL parses as plain PromQL. */
const withGrafanaValues = (expr: string) =>
  expr
    .replaceAll('$__rate_interval', '5m')
    .replaceAll('$__interval', '1m')
    .replaceAll('$__range', '6h')
    .replace(/\$\{?job\}?/g, 'clerk-invitation-mirror')
    .replace(/\$\{?instance\}?/g, '.*');

// ---------------------------------------------------------------------------------------------

describe('the PromQL reader', () => {
  const names = (expr: string) => selectorsOf(expr).map((s) => s.name);

  it('finds the metrics of an expression and nothing else', () => {
    expect(
      names(
        'max by (job) ((time() - clerk_mirror_a) and on (job, instance) clerk_mirror_b and on (job, instance) (time() - process_c > 10800)) > 1e3 unless vector(0) offset 5m',
      ),
    ).toEqual(['clerk_mirror_a', 'clerk_mirror_b', 'process_c']);
    expect(names('histogram_quantile(0.99, sum by (le, route) (rate(x_bucket{job="$job", instance=~"$instance"}[$__rate_interval])))')).toEqual(['x_bucket']);
    expect(names('sum(rate(a[5m:1m])) by (caller) / on(instance) group_left(version) b == bool 1')).toEqual(['a', 'b']);
    expect(names('label_replace(up{job="x"}, "host", "$1", "instance", "(.*):.*") or absent(nodejs_version_info)')).toEqual(['up', 'nodejs_version_info']);
    expect(names('topk(5, count_values("v", {__name__="clerk_mirror_build_info"}))')).toEqual(['clerk_mirror_build_info']);
    expect(selectorsOf('a{status=~"401|403", caller!="lookup",}')[0]!.matchers).toEqual([
      { label: 'status', op: '=~', value: '401|403' },
      { label: 'caller', op: '!=', value: 'lookup' },
    ]);
  });

  it('catches a misspelled metric, an unknown label, a histogram without _bucket and a state that never exists', () => {
    const cat = catalogueOf(
      [
        '# HELP clerk_mirror_webhook_signature_failures_total x',
        '# TYPE clerk_mirror_webhook_signature_failures_total counter',
        '# TYPE clerk_mirror_bapi_requests_total counter',
        'clerk_mirror_bapi_requests_total{caller="webhook",status="200"} 3',
        '# TYPE clerk_mirror_sync_lag_seconds histogram',
        'clerk_mirror_sync_lag_seconds_bucket{le="+Inf"} 3',
        '# TYPE clerk_mirror_queue_jobs gauge',
        'clerk_mirror_queue_jobs{state="waiting"} 0',
        'clerk_mirror_queue_jobs{state="failed"} 0',
      ].join('\n'),
      new Map([['clerk_mirror_drift_total', ['kind']]]),
    );
    expect(problemsOf('rate(clerk_mirror_webhook_signature_failures_total[5m]) > 0', cat)).toEqual([]);
    expect(problemsOf('rate(clerk_mirror_webhook_signature_failure_total[5m]) > 0', cat)).toEqual(['unknown metric clerk_mirror_webhook_signature_failure_total']);
    expect(problemsOf('sum(rate(clerk_mirror_bapi_requests_total{status="429", job="x"}[5m]))', cat)).toEqual([]);
    expect(problemsOf('sum(rate(clerk_mirror_bapi_requests_total{code="429"}[5m]))', cat)[0]).toMatch(/has no label code/);
    expect(problemsOf('histogram_quantile(0.99, sum by (le) (rate(clerk_mirror_sync_lag_seconds_bucket[5m])))', cat)).toEqual([]);
    expect(problemsOf('histogram_quantile(0.99, rate(clerk_mirror_sync_lag_seconds[5m]))', cat)[0]).toMatch(/is a histogram/);
    expect(problemsOf('clerk_mirror_sync_lag_seconds_total', cat)).toEqual(['unknown metric clerk_mirror_sync_lag_seconds_total']);
    expect(problemsOf('clerk_mirror_queue_jobs{state=~"waiting|failed"} > 0', cat)).toEqual([]);
    expect(problemsOf('clerk_mirror_queue_jobs{state="wait"} > 0', cat)[0]).toMatch(/never exists/);
    expect(problemsOf('time() - 1', cat)).toEqual(['no metric in time() - 1']);
  });
});

describe('ops/prometheus-alerts.yml', () => {
  it('gives every alert a unique name, an expression, a for, a severity, a summary, a description and a runbook hint', () => {
    expect(alerts.length).toBeGreaterThanOrEqual(12);
    const names = alerts.map((a) => a.alert!);
    expect(names.filter((n, i) => names.indexOf(n) !== i), 'duplicate alert names').toEqual([]);
    for (const a of alerts) {
      const where = `alert ${a.alert}`;
      expect(a.alert, where).toMatch(/^[A-Z][A-Za-z0-9]+$/);
      expect(typeof a.expr, where).toBe('string');
      expect(a.for, where).toMatch(/^\d+[smhd]$/);
      expect(['critical', 'warning'], where).toContain(a.labels?.severity);
      for (const k of ['summary', 'description', 'runbook']) expect(a.annotations?.[k]?.trim(), `${where}: ${k}`).toBeTruthy();
    }
  });

  it('alerts on what the operations issue asks for', () => {
    const named = new Set(alerts.flatMap((a) => selectorsOf(a.expr).map((s) => s.name)));
    for (const metric of [
      'up',
      'clerk_mirror_webhook_signature_failures_total',
      'clerk_mirror_queue_jobs',
      'clerk_mirror_queue_oldest_waiting_seconds',
      'clerk_mirror_jobs_total',
      'clerk_mirror_bapi_requests_total',
      'clerk_mirror_bapi_budget_exhausted_seconds',
      'clerk_mirror_bapi_budget_spent_requests',
      'clerk_mirror_replica_seconds_behind',
      'clerk_mirror_replica_state',
      'clerk_mirror_last_reconcile_timestamp_seconds',
    ]) {
      expect(named, metric).toContain(metric);
    }
    const bapi = alerts.filter((a) => a.expr.includes('clerk_mirror_bapi_requests_total')).map((a) => a.expr);
    expect(bapi.some((e) => /status=~"401\|403"/.test(e))).toBe(true);
    expect(bapi.some((e) => /status="429"/.test(e))).toBe(true);
    // Credentials refused pages; the service being down pages.
    expect(alerts.find((a) => /status=~"401\|403"/.test(a.expr))?.labels?.severity).toBe('critical');
    expect(alerts.find((a) => /^up\{job="clerk-invitation-mirror"\} == 0$/.test(a.expr.trim()))?.labels?.severity).toBe('critical');
  });

  it('states the setting each configuration-derived threshold assumes', () => {
    const about = (metric: string) => alerts.filter((a) => a.expr.includes(metric));
    for (const a of about('clerk_mirror_replica_seconds_behind')) expect(a.annotations!.description).toMatch(/REPLICA_MAX_LAG_MS \(default 30000/);
    for (const a of about('clerk_mirror_last_reconcile_timestamp_seconds')) expect(a.annotations!.description).toMatch(/RECONCILE_INTERVAL_MS \(default 3600000/);
    for (const a of [...about('clerk_mirror_bapi_budget_spent_requests'), ...about('clerk_mirror_bapi_budget_exhausted_seconds')]) expect(a.annotations!.description).toMatch(/BAPI_RATE_LIMIT/);
    // Only processes that run a worker (they alone have the budget gauges) count for the reconciliation alert.
    for (const a of about('clerk_mirror_last_reconcile_timestamp_seconds')) expect(a.expr).toMatch(/and on \(job, instance\) clerk_mirror_bapi_budget_limit_requests/);
  });
});

describe('ops/grafana-dashboard.json', () => {
  it('is an importable dashboard with a data source variable, job and instance variables', () => {
    expect(dashboard.uid).toBe('clerk-invitation-mirror');
    expect(dashboard.title).toBeTruthy();
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const byName = new Map(variables.map((v) => [v.name, v]));
    expect(byName.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(queryOf(byName.get('job')!)).toMatch(/^label_values\(clerk_mirror_build_info, job\)$/);
    expect(queryOf(byName.get('instance')!)).toMatch(/^label_values\(clerk_mirror_build_info\{job="\$job"\}, instance\)$/);
  });

  it('has unique panel ids, and every panel a data source, a place on the grid and queries', () => {
    const ids = allPanels.map((p) => p.id);
    expect(ids.every((id) => Number.isInteger(id) && id > 0)).toBe(true);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i), 'duplicate panel ids').toEqual([]);
    expect(dataPanels.length).toBeGreaterThanOrEqual(25);
    for (const p of allPanels) {
      const where = `panel ${p.id} "${p.title}"`;
      expect(p.title, where).toBeTruthy();
      expect(p.gridPos, where).toBeDefined();
      expect(p.gridPos!.x + p.gridPos!.w, where).toBeLessThanOrEqual(24);
      if (p.type === 'row') continue;
      expect(p.datasource, where).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(p.targets?.length, where).toBeGreaterThan(0);
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, `${where}: refIds`).toBe(refIds.length);
      for (const t of p.targets!) {
        expect(t.expr?.trim(), where).toBeTruthy();
        if (t.datasource) expect(t.datasource, where).toEqual(p.datasource);
        // Every query follows the job and instance chosen at the top.
        for (const s of selectorsOf(t.expr!)) {
          const labels = s.matchers.map((m) => `${m.label}${m.op}${m.value}`);
          expect(labels, `${where}: ${s.name}`).toEqual(expect.arrayContaining(['job=$job', 'instance=~$instance']));
        }
      }
    }
    for (const v of variables.filter((x) => x.type === 'query')) expect(v.datasource, `variable ${v.name}`).toEqual({ type: 'prometheus', uid: '${datasource}' });
  });

  it('shows what the operations issue asks for', () => {
    const named = new Set(dataPanels.flatMap((p) => (p.targets ?? []).flatMap((t) => selectorsOf(t.expr ?? '').map((s) => s.name))));
    for (const metric of [
      'clerk_mirror_webhooks_total',
      'clerk_mirror_webhook_signature_failures_total',
      'clerk_mirror_enqueue_duration_seconds_bucket',
      'clerk_mirror_queue_jobs',
      'clerk_mirror_queue_oldest_waiting_seconds',
      'clerk_mirror_jobs_total',
      'clerk_mirror_bapi_requests_total',
      'clerk_mirror_bapi_request_duration_seconds_bucket',
      'clerk_mirror_bapi_budget_spent_requests',
      'clerk_mirror_bapi_budget_limit_requests',
      'clerk_mirror_sync_lag_seconds_bucket',
      'clerk_mirror_replica_lag_seconds_bucket',
      'clerk_mirror_replica_seconds_behind',
      'clerk_mirror_replica_entries_behind',
      'clerk_mirror_replica_state',
      'clerk_mirror_invitations',
      'clerk_mirror_read_requests_total',
      'clerk_mirror_read_request_duration_seconds_bucket',
      'clerk_mirror_drift_total',
      'clerk_mirror_last_reconcile_timestamp_seconds',
      'clerk_mirror_build_info',
      'process_resident_memory_bytes',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(named, metric).toContain(metric);
    }
  });
});

describe('every metric and label the ops files name exists in a running service', () => {
  const tmp = tempDir();
  let h: Harness;
  let cat: Catalogue;

  beforeAll(async () => {
    h = await startHarness({ name: 'ops-files', dir: tmp.path, env: { MIRROR_API_KEY: API_KEY } });
    // Traffic first, so labelled series have samples: webhooks, jobs, BAPI calls, the replica, reads, a refused signature.
    const org = h.sim.store.createOrganization({ name: 'Ops' });
    const invs = Array.from({ length: 4 }, (_, i) => h.sim.store.createInvitation(org.id, { emailAddress: `ops${i}@example.com` }));
    h.sim.store.revokeInvitation(invs[0]!.id);
    await settle(h);
    const forged = signed({ type: 'organizationInvitation.created', data: { id: 'orginv_x' } }, { secret: `whsec_${Buffer.alloc(32, 7).toString('base64')}` });
    expect((await fetch(h.webhookUrl, { method: 'POST', body: forged.body, headers: forged.headers })).status).toBeGreaterThanOrEqual(400);
    const auth = { authorization: `Bearer ${API_KEY}` };
    expect((await fetch(`${h.service.url}/v1/organizations/${org.id}/invitations/${invs[1]!.id}`, { headers: auth })).status).toBe(200);
    expect((await fetch(`${h.service.url}/v1/organizations/${org.id}/invitations?limit=2`, { headers: auth })).status).toBe(200);
    const res = await fetch(`${h.service.url}/metrics`, { headers: auth });
    expect(res.status).toBe(200);
    const text = await res.text();
    // Label names a metric declares, whether or not it has a sample yet (drift, collect errors).
    const declared = new Map<string, string[]>();
    const every = createMetrics({
      stats: new PipelineStats(),
      queueCounts: async () => ({}),
      queueOldestAt: async () => undefined,
      mirrorCounts: () => ({}),
      lastReconcileAt: () => undefined,
      budget: () => undefined,
      replicaStatus: () => Promise.reject(new Error('never scraped')),
    });
    for (const m of every.registry.getMetricsAsArray()) declared.set(m.name, [...((m as unknown as { labelNames?: string[] }).labelNames ?? [])]);
    cat = catalogueOf(text, declared);
  }, 60_000);
  afterAll(async () => {
    await h?.stop();
    tmp.cleanup();
  });

  it('scraped a service with samples of the labelled metrics', () => {
    expect(cat.get('clerk_mirror_bapi_requests_total')?.values.get('status')).toContain('200');
    expect([...(cat.get('clerk_mirror_webhooks_total')?.values.get('outcome') ?? [])]).toEqual(expect.arrayContaining(['accepted', 'rejected']));
    expect(cat.get('clerk_mirror_webhook_signature_failures_total')).toBeDefined();
    expect(cat.get('clerk_mirror_queue_jobs')?.values.get('state')).toEqual(new Set(['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed']));
    expect(cat.get('clerk_mirror_drift_total')?.labels).toEqual(new Set(['kind', 'action']));
  });

  it.each(exprs)('$where', ({ expr }) => {
    expect(problemsOf(expr, cat), expr).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// promtool, from Debian's prometheus package: the rules load in Prometheus and their unit tests pass.

const PROMTOOL_MISSING = "promtool not found: install Debian's prometheus package, which ships it (apt-get install -y --no-install-recommends prometheus)";

function promtool(...args: string[]) {
  const r = spawnSync('promtool', args, { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw new Error(PROMTOOL_MISSING);
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('promtool', () => {
  it('accepts the rule file', () => {
    const r = promtool('check', 'rules', ALERTS_FILE);
    expect(r.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(r.status, r.output).toBe(0);
  });

  it('passes the alert unit tests (ops/prometheus-alerts.test.yml)', () => {
    const r = promtool('test', 'rules', ALERT_TESTS_FILE);
    expect(r.status, r.output).toBe(0);
  });

  it("parses every query of the dashboard (as recording rules, Grafana's variables given values)", () => {
    const tmp = tempDir('cim-ops-');
    try {
      const record = exprs.filter((e) => !e.where.startsWith('alert ')).map((e, i) => ({ record: `dashboard_query_${i}`, expr: withGrafanaValues(e.expr), labels: { where: e.where } }));
      const file = join(tmp.path, 'dashboard-queries.yml');
      writeFileSync(file, stringifyYaml({ groups: [{ name: 'dashboard', rules: record }] }));
      const r = promtool('check', 'rules', file);
      expect(r.status, r.output).toBe(0);
      expect(r.output).toContain(`SUCCESS: ${record.length} rules found`);
    } finally {
      tmp.cleanup();
    }
  });
});
