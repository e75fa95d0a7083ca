// The load generator of the pipeline benchmarks, run in a child process by harness.ts so that it
// never shares an event loop (or a CPU's worth of time slices) with the server it measures.
// Reads one LoadInput as JSON on stdin (it carries the signing secret, which must not show in
// `ps`), prints one JSON line (LoadOutput) on stdout.
import { Agent, request } from 'node:http';
import Database from 'better-sqlite3';
import { gt, sql } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import autocannon from 'autocannon';
import { Webhook } from 'svix';
import { organizationInvitations as inv } from '../src/mirror/schema.ts';
import { requestBytes, runRawLoad } from './raw-load.ts';

/** Invitations the webhooks are about: `given` (real ones from the simulator) or `synthetic` ids. */
export type EventSource =
  | { kind: 'given'; data: Record<string, unknown>[] }
  | { kind: 'synthetic'; count: number; organizations: number; salt: string }
  /** `count` bodies over only `distinct` invitations, for the deduplication variant. */
  | { kind: 'repeated'; count: number; distinct: number; salt: string };

export interface AutocannonInput {
  /** `raw`: bench/raw-load.ts instead of autocannon, same input and output. */
  mode: 'autocannon' | 'raw';
  url: string;
  secret: string;
  events: EventSource;
  connections: number;
  warmupS: number;
  durationS: number;
}

export interface AutocannonOutput {
  requests2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  durationS: number;
  /** 2xx per second over the measured run. */
  rate: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  /** Bodies sent (warm-up included) against the pool size: above 1 means some invitations repeated. */
  poolUse: number;
  /** Bodies sent, warm-up included. */
  sent: number;
  /** CPU time of this load generator per request sent (warm-up included). */
  clientCpuUsPerReq: number;
}

export interface SendInput {
  mode: 'send';
  url: string;
  secret: string;
  events: EventSource;
  /** Requests in flight at most. */
  concurrency: number;
  /** Steady pace in requests per second; unset sends as fast as `concurrency` allows. */
  ratePerS?: number;
  /** Poll this mirror (read-only) and report when each invitation's row became visible. */
  poll?: { dbPath: string; intervalMs: number; timeoutMs: number; skipFirst: number };
}

export interface SendOutput {
  sent: number;
  ok: number;
  non2xx: number;
  errors: number;
  elapsedMs: number;
  achievedRate: number;
  acceptP50Ms: number;
  acceptP99Ms: number;
  lag?: { samples: number; missing: number; p50: number; p90: number; p99: number; max: number };
}

export type LoadInput = AutocannonInput | SendInput;
export type LoadOutput = AutocannonOutput | SendOutput;

interface Signed {
  id: string;
  body: Buffer;
  headers: Record<string, string>;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
const r2 = (x: number) => Math.round(x * 100) / 100;
const cpuUs = (u: NodeJS.CpuUsage) => u.user + u.system;

function syntheticInvitation(i: number, organizations: number, salt: string): Record<string, unknown> {
  const now = Date.now();
  return {
    object: 'organization_invitation',
    id: `orginv_bench${salt}${String(i).padStart(8, '0')}`,
    email_address: `user${i}@example.com`,
    role: 'org:member',
    role_name: 'Member',
    organization_id: `org_bench${salt}${String(i % organizations).padStart(5, '0')}`,
    inviter_id: 'user_2xQ5aB9cDdEe6Ff7Gg8Hh9Ii0Jj',
    public_inviter_data: null,
    status: 'pending',
    public_metadata: {},
    private_metadata: {},
    url: null,
    expires_at: now + 30 * 86_400_000,
    created_at: now,
    updated_at: now,
  };
}

function eventData(src: EventSource): Record<string, unknown>[] {
  switch (src.kind) {
    case 'given':
      return src.data;
    case 'synthetic':
      return Array.from({ length: src.count }, (_, i) => syntheticInvitation(i, src.organizations, src.salt));
    case 'repeated':
      return Array.from({ length: src.count }, (_, i) => syntheticInvitation(i % src.distinct, Math.min(100, src.distinct), src.salt));
  }
}

/** Signs every body as Clerk's Svix would, up front, so that signing costs nothing during the run. */
function presign(secret: string, src: EventSource): Signed[] {
  const wh = new Webhook(secret);
  const at = new Date();
  return eventData(src).map((data, i) => {
    const body = JSON.stringify({
      data,
      object: 'event',
      type: 'organizationInvitation.created',
      timestamp: at.getTime(),
      instance_id: 'ins_2benchInstance0000000000000',
      event_attributes: { http_request: { client_ip: '192.0.2.10', user_agent: '@clerk/backend@3.25.0' } },
    });
    const msgId = `msg_bench${i}_${Math.random().toString(36).slice(2, 10)}`;
    return {
      id: String(data.id),
      body: Buffer.from(body),
      headers: {
        'content-type': 'application/json',
        'svix-id': msgId,
        'svix-timestamp': String(Math.floor(at.getTime() / 1000)),
        'svix-signature': wh.sign(msgId, at, body),
      },
    };
  });
}

async function runAutocannon(input: AutocannonInput): Promise<AutocannonOutput> {
  const pool = presign(input.secret, input.events);
  let next = 0;
  const requests = [
    {
      method: 'POST',
      path: new URL(input.url).pathname,
      setupRequest: (req: object) => {
        const s = pool[next++ % pool.length]!;
        return { ...req, method: 'POST', body: s.body, headers: s.headers };
      },
    },
  ];
  const base = { url: input.url, connections: input.connections, pipelining: 1, timeout: 10, requests };
  const cpu0 = process.cpuUsage();
  if (input.warmupS > 0) await autocannon({ ...base, duration: input.warmupS });
  const r = await autocannon({ ...base, duration: input.durationS });
  return {
    requests2xx: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    durationS: r.duration,
    rate: r2(r['2xx'] / r.duration),
    latencyP50Ms: r.latency.p50,
    latencyP99Ms: r.latency.p99,
    latencyMaxMs: r.latency.max,
    poolUse: r2(next / pool.length),
    sent: next,
    clientCpuUsPerReq: r2(cpuUs(process.cpuUsage(cpu0)) / next),
  };
}

async function runRaw(input: AutocannonInput): Promise<AutocannonOutput> {
  const pool = presign(input.secret, input.events).map((s) => requestBytes(input.url, s.headers, s.body));
  const cpu0 = process.cpuUsage();
  const r = await runRawLoad(pool, input);
  const lat = r.latenciesMs;
  return {
    requests2xx: r.ok2xx,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    durationS: r.durationS,
    rate: r2(r.ok2xx / r.durationS),
    latencyP50Ms: r2(pct(lat, 50)),
    latencyP99Ms: r2(pct(lat, 99)),
    latencyMaxMs: r2(lat[lat.length - 1] ?? NaN),
    poolUse: r2(r.sent / pool.length),
    sent: r.sent,
    clientCpuUsPerReq: r2(cpuUs(process.cpuUsage(cpu0)) / r.sent),
  };
}

function post(agent: Agent, url: URL, s: Signed): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { ...s.headers, 'content-length': String(s.body.length) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(s.body);
  });
}

async function runSend(input: SendInput): Promise<SendOutput> {
  const pool = presign(input.secret, input.events);
  const url = new URL(input.url);
  const agent = new Agent({ keepAlive: true, maxSockets: input.concurrency });
  const acceptedAt = new Map<string, number>();
  const visibleAt = new Map<string, number>();
  const acceptLatency: number[] = [];
  let ok = 0;
  let non2xx = 0;
  let errors = 0;

  // Row visibility, seen the way another process on the host sees it: a read-only connection.
  let poller: NodeJS.Timeout | undefined;
  let db: Database.Database | undefined;
  if (input.poll) {
    db = new Database(input.poll.dbPath, { readonly: true, fileMustExist: true });
    const rowid = sql<number>`rowid`;
    const query = drizzle(db).select({ rowid, id: inv.id }).from(inv).where(gt(rowid, sql.placeholder('last'))).orderBy(rowid).prepare();
    let last = 0;
    poller = setInterval(() => {
      const rows = query.all({ last });
      const t = Date.now();
      for (const row of rows) {
        last = Math.max(last, row.rowid);
        if (!visibleAt.has(row.id)) visibleAt.set(row.id, t);
      }
    }, input.poll.intervalMs);
  }

  const sendOne = async (s: Signed) => {
    const t = performance.now();
    try {
      const status = await post(agent, url, s);
      if (status >= 200 && status < 300) {
        ok++;
        acceptedAt.set(s.id, Date.now());
        acceptLatency.push(performance.now() - t);
      } else non2xx++;
    } catch {
      errors++;
    }
  };

  const started = performance.now();
  let i = 0;
  const all: Promise<void>[] = [];
  if (input.ratePerS) {
    // Steady pace: request i leaves at started + i / rate, whatever the answers do.
    const gapMs = 1000 / input.ratePerS;
    while (i < pool.length) {
      const due = Math.min(pool.length, Math.floor((performance.now() - started) / gapMs) + 1);
      while (i < due) all.push(sendOne(pool[i++]!));
      await new Promise((r) => setTimeout(r, 1));
    }
  } else {
    const workers = Array.from({ length: input.concurrency }, async () => {
      while (i < pool.length) await sendOne(pool[i++]!);
    });
    all.push(...workers);
  }
  await Promise.all(all);
  const elapsedMs = performance.now() - started;
  agent.destroy();

  let lag: SendOutput['lag'];
  if (input.poll && db) {
    const deadline = Date.now() + input.poll.timeoutMs;
    while (Date.now() < deadline && [...acceptedAt.keys()].some((id) => !visibleAt.has(id))) await new Promise((r) => setTimeout(r, 20));
    clearInterval(poller);
    db.close();
    const lags: number[] = [];
    let missing = 0;
    pool.slice(input.poll.skipFirst).forEach((s) => {
      const a = acceptedAt.get(s.id);
      const v = visibleAt.get(s.id);
      if (a === undefined) return;
      if (v === undefined) missing++;
      // A row seen before its 2xx arrived (the answer was slow to travel back) counts as 0.
      else lags.push(Math.max(0, v - a));
    });
    lags.sort((a, b) => a - b);
    lag = { samples: lags.length, missing, p50: pct(lags, 50), p90: pct(lags, 90), p99: pct(lags, 99), max: lags[lags.length - 1] ?? NaN };
  }
  acceptLatency.sort((a, b) => a - b);
  return {
    sent: i,
    ok,
    non2xx,
    errors,
    elapsedMs: r2(elapsedMs),
    achievedRate: r2((i / elapsedMs) * 1000),
    acceptP50Ms: r2(pct(acceptLatency, 50)),
    acceptP99Ms: r2(pct(acceptLatency, 99)),
    lag,
  };
}

async function main() {
  let raw = '';
  for await (const chunk of process.stdin) raw += String(chunk);
  const input = JSON.parse(raw) as LoadInput;
  const out: LoadOutput = input.mode === 'send' ? await runSend(input) : input.mode === 'raw' ? await runRaw(input) : await runAutocannon(input);
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

await main();
