import { z } from 'zod';
import { CLERK_RATE_WINDOW_MS, clerkRequestsPerWindow, SECRET_KEY_PATTERN } from './clerk/secret-key.ts';
import { DEFAULT_KEY_PREFIX, KEY_PREFIX_PATTERN } from './state/keys.ts';

/**
 * Thrown when the environment is missing or has a malformed value. `message` is one line
 * naming the variable and what it expects, fit to print as the only line before exiting.
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly variable: string,
    readonly expected: string,
    /** Every other bad or missing variable, so one start-up names them all. */
    readonly others: readonly { variable: string; expected: string }[] = [],
  ) {
    super([{ variable, expected }, ...others].map((p) => `${p.variable}: ${p.expected}`).join('; '));
  }

  /** The same problems with `hint` appended to the last one's text. */
  withHint(hint: string): ConfigError {
    const all = [{ variable: this.variable, expected: this.expected }, ...this.others];
    const last = all.at(-1)!;
    all[all.length - 1] = { ...last, expected: `${last.expected}; ${hint}` };
    return new ConfigError(all[0]!.variable, all[0]!.expected, all.slice(1));
  }
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** auto: readable lines on a terminal, JSON lines otherwise. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;

const emptyAsUnset = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const optional = <T extends z.ZodType>(schema: T) => z.preprocess(emptyAsUnset, schema.optional());
const withDefault = <T extends z.ZodType>(schema: T, fallback: z.input<T>) =>
  z.preprocess(emptyAsUnset, schema.default(fallback as never));

const port = (what: string) =>
  z.coerce.number({ error: `expected ${what}` }).int({ error: `expected ${what}` }).min(0, `expected ${what}`).max(65535, `expected ${what}`);

const positiveInt = (what: string) =>
  z.coerce.number({ error: `expected ${what}` }).int({ error: `expected ${what}` }).positive({ error: `expected ${what}` });

/** A whole number of milliseconds of at least `min`: below it a setting only burns CPU or Redis. */
const atLeastMs = (what: string, min: number) => {
  const expected = `expected ${what} in milliseconds, at least ${min}`;
  return z.coerce.number({ error: expected }).int({ error: expected }).min(min, { error: expected });
};

const nonNegativeInt = (what: string) =>
  z.coerce.number({ error: `expected ${what}` }).int({ error: `expected ${what}` }).min(0, { error: `expected ${what}` });

/** How long the change stream keeps a change: a replica offline for a day and a half resumes from its offset. */
export const DEFAULT_RETENTION_MS = 36 * 3_600_000;

export const DEFAULT_CLERK_API_URL = 'https://api.clerk.com';

/** The whole stop's deadline, also for a signal that comes before the environment is read. */
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 15_000;

/**
 * Every environment variable the service reads, with what it expects. The names are public
 * contract; the README's configuration table lists exactly these with `envDescriptions`
 * (test/project-files.test.ts holds it to that).
 */
export const envSchema = z.object({
  CLERK_SECRET_KEY: optional(
    z.string().regex(SECRET_KEY_PATTERN, 'expected a Clerk secret key starting with sk_live_ or sk_test_'),
  ),
  CLERK_WEBHOOK_SIGNING_SECRET: optional(
    z
      .string()
      .regex(/^whsec_[A-Za-z0-9+/]+={0,2}$/, 'expected a Svix signing secret of the form whsec_<base64>')
      .refine((s) => Buffer.from(s.slice('whsec_'.length), 'base64').length >= 16, {
        message: 'expected a Svix signing secret of the form whsec_<base64> (at least 16 bytes)',
      }),
  ),
  CLERK_API_URL: withDefault(
    z.url({ protocol: /^https?$/, error: 'expected an http(s) URL such as https://api.clerk.com' }),
    DEFAULT_CLERK_API_URL,
  ),
  REDIS_URL: optional(
    z.url({ protocol: /^rediss?$/, error: 'expected a redis:// or rediss:// URL (leave unset to run a private redis-server)' }),
  ),
  MIRROR_DB_PATH: withDefault(z.string().min(1, 'expected a file path'), './data/mirror.db'),
  PORT: withDefault(port('a TCP port number from 0 to 65535'), 8080),
  HOST: withDefault(z.string().min(1, 'expected a host name or IP address to listen on'), '127.0.0.1'),
  MIRROR_API_KEY: optional(z.string().min(24, 'expected a bearer token of at least 24 characters')),
  // Case-insensitive: INFO and Info mean info, as in most tools.
  LOG_LEVEL: withDefault(z.preprocess((v) => (typeof v === 'string' ? v.toLowerCase() : v), z.enum(LOG_LEVELS, { error: `expected one of ${LOG_LEVELS.join(', ')}` })), 'info'),
  BAPI_RATE_LIMIT: optional(positiveInt('a whole number of BAPI requests per BAPI_RATE_WINDOW_MS')),
  BAPI_RATE_WINDOW_MS: withDefault(atLeastMs('a window length', 1000), CLERK_RATE_WINDOW_MS),
  BAPI_TIMEOUT_MS: withDefault(atLeastMs('a request timeout', 100), 10_000),
  STALE_READ_WAIT_MS: withDefault(nonNegativeInt('a wait in milliseconds, or 0 to publish at once'), 30_000),
  // A run lists every page of BAPI: an interval under a minute would spend the budget on repairs.
  RECONCILE_INTERVAL_MS: withDefault(
    nonNegativeInt('an interval in milliseconds of at least 60000, or 0 for no schedule').refine((n) => n === 0 || n >= 60_000, {
      error: 'expected an interval in milliseconds of at least 60000, or 0 for no schedule',
    }),
    3_600_000,
  ),
  RECONCILE_MAX_AGE_MS: withDefault(atLeastMs('an age', 60_000), 86_400_000),
  REDIS_KEY_PREFIX: withDefault(
    z.string().regex(KEY_PREFIX_PATTERN, 'expected 1 to 64 letters, digits, dots, colons, dashes or underscores (no braces)'),
    DEFAULT_KEY_PREFIX,
  ),
  CHANGE_STREAM_RETENTION_MS: withDefault(
    positiveInt('an age in milliseconds, at least 60000').refine((n) => n >= 60_000, { error: 'expected an age in milliseconds, at least 60000' }),
    DEFAULT_RETENTION_MS,
  ),
  REPLICA_MAX_LAG_MS: withDefault(atLeastMs('a lag', 1000), 30_000),
  READ_THROUGH: withDefault(z.enum(['0', '1'], { error: 'expected 1 (on) or 0 (off)' }), '0'),
  READ_THROUGH_LIMIT: optional(positiveInt('a whole number of BAPI requests per BAPI_RATE_WINDOW_MS')),
  MIRROR_ADMIN_KEY: optional(z.string().min(24, 'expected a bearer token of at least 24 characters')),
  SHUTDOWN_TIMEOUT_MS: withDefault(atLeastMs('a deadline', 1000), DEFAULT_SHUTDOWN_TIMEOUT_MS),
  REDIS_CONNECT_TIMEOUT_MS: withDefault(atLeastMs('a wait', 100), 15_000),
  LOG_FORMAT: withDefault(
    z.preprocess((v) => (typeof v === 'string' ? v.toLowerCase() : v), z.enum(LOG_FORMATS, { error: `expected one of ${LOG_FORMATS.join(', ')}` })),
    'auto',
  ),
  HTTP_KEEP_ALIVE_TIMEOUT_MS: withDefault(atLeastMs('an idle time', 1000), 10_000),
  HTTP_MAX_CONNECTIONS: optional(positiveInt('a whole number of open HTTP connections')),
});

export type Env = z.infer<typeof envSchema>;
export type EnvName = keyof Env;

export interface Config {
  readonly clerk: {
    readonly secretKey: string | undefined;
    readonly webhookSigningSecret: string | undefined;
    readonly apiUrl: string;
    /** Requests per window all workers of this instance may spend on BAPI. */
    readonly rateLimit: { readonly max: number; readonly windowMs: number };
    readonly timeoutMs: number;
    /** How long after an event a stale BAPI answer is fetched again before it is published. */
    readonly staleReadWaitMs: number;
  };
  readonly redisUrl: string | undefined;
  /** Every Redis key of this mirror starts with `{keyPrefix}`. */
  readonly keyPrefix: string;
  readonly state: {
    /** How long the change stream keeps a change (a replica offline longer reloads the snapshot). */
    readonly retentionMs: number;
  };
  readonly replica: {
    /** `/readyz` of a replica fails while it is this far behind the shared state. */
    readonly maxLagMs: number;
  };
  /** The read API's lookups of invitations the mirror never saw ask Clerk, this many per window at most; undefined when off. */
  readonly readThrough: { readonly maxPerWindow: number } | undefined;
  readonly mirrorDbPath: string;
  readonly http: { readonly port: number; readonly host: string };
  /** Connection limits of the HTTP server (the fixed timeouts are in http/app.ts). */
  readonly httpLimits: {
    /** An idle keep-alive connection is closed after this. */
    readonly keepAliveTimeoutMs: number;
    /** Connections beyond this are closed at once; undefined: derived from the descriptor limit (http/app.ts). */
    readonly maxConnections: number | undefined;
  };
  readonly mirrorApiKey: string | undefined;
  /** Bearer of the dashboard's write actions (retry, clean, delete); without it the dashboard is read-only. */
  readonly adminKey: string | undefined;
  readonly logLevel: (typeof LOG_LEVELS)[number];
  readonly logFormat: (typeof LOG_FORMATS)[number];
  /** The whole process stops within this after SIGTERM/SIGINT, whatever hangs. */
  readonly shutdownTimeoutMs: number;
  /** How long start-up waits for Redis before it gives up with one line. */
  readonly redisConnectTimeoutMs: number;
  readonly reconcile: {
    /** How often the scheduled reconciliation runs. */
    readonly intervalMs: number;
    /** Rows not confirmed by Clerk for longer than this are re-fetched. */
    readonly maxAgeMs: number;
  };
}

/** The part of Clerk's per-instance budget the mirror takes unless told otherwise: the application keeps the rest (README, "BAPI budget"). */
export const DEFAULT_BUDGET_SHARE = 0.3;

/** Clerk's published per-instance budgets (requests per 10 s), times the mirror's default share. */
export function defaultRateLimit(secretKey: string | undefined): number {
  return Math.floor(clerkRequestsPerWindow(secretKey) * DEFAULT_BUDGET_SHARE);
}

/**
 * Parses the environment once into a frozen Config. Pure: it reads only `env`.
 * `require` names variables that must be set for the part being started.
 *
 * @throws ConfigError naming every bad or missing variable, in one line.
 */
export function loadConfig(env: Record<string, string | undefined>, options: { require?: readonly EnvName[] } = {}): Config {
  const parsed = envSchema.safeParse(env);
  const problems: { variable: string; expected: string }[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const variable = String(issue.path[0] ?? 'environment');
      if (problems.some((p) => p.variable === variable)) continue;
      problems.push({ variable, expected: issue.code === 'invalid_type' && env[variable] === undefined ? 'is required' : issue.message });
    }
  }
  const e = parsed.data;
  for (const name of options.require ?? []) {
    if ((e ? e[name] === undefined : !env[name]?.trim()) && !problems.some((p) => p.variable === name)) {
      problems.push({ variable: name, expected: `is required (${describe(name)})` });
    }
  }
  if (problems.length || !e) {
    const [first, ...others] = problems;
    throw new ConfigError(first!.variable, first!.expected, others);
  }
  return deepFreeze({
    clerk: {
      secretKey: e.CLERK_SECRET_KEY,
      webhookSigningSecret: e.CLERK_WEBHOOK_SIGNING_SECRET,
      apiUrl: e.CLERK_API_URL.replace(/\/+$/, ''),
      rateLimit: { max: e.BAPI_RATE_LIMIT ?? defaultRateLimit(e.CLERK_SECRET_KEY), windowMs: e.BAPI_RATE_WINDOW_MS },
      timeoutMs: e.BAPI_TIMEOUT_MS,
      staleReadWaitMs: e.STALE_READ_WAIT_MS,
    },
    redisUrl: e.REDIS_URL,
    keyPrefix: e.REDIS_KEY_PREFIX,
    state: { retentionMs: e.CHANGE_STREAM_RETENTION_MS },
    replica: { maxLagMs: e.REPLICA_MAX_LAG_MS },
    readThrough: e.READ_THROUGH === '1' ? { maxPerWindow: e.READ_THROUGH_LIMIT ?? Math.max(1, Math.floor((e.BAPI_RATE_LIMIT ?? defaultRateLimit(e.CLERK_SECRET_KEY)) / 10)) } : undefined,
    mirrorDbPath: e.MIRROR_DB_PATH,
    http: { port: e.PORT, host: e.HOST },
    httpLimits: { keepAliveTimeoutMs: e.HTTP_KEEP_ALIVE_TIMEOUT_MS, maxConnections: e.HTTP_MAX_CONNECTIONS },
    mirrorApiKey: e.MIRROR_API_KEY,
    adminKey: e.MIRROR_ADMIN_KEY,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    redisConnectTimeoutMs: e.REDIS_CONNECT_TIMEOUT_MS,
    reconcile: { intervalMs: e.RECONCILE_INTERVAL_MS, maxAgeMs: e.RECONCILE_MAX_AGE_MS },
  });
}

/** One-line descriptions, shared by error messages, `--help` and the README table. */
export const envDescriptions: Record<EnvName, string> = {
  CLERK_SECRET_KEY: 'Clerk secret key, sk_live_… or sk_test_…; used to call BAPI and accepted as a read API bearer',
  CLERK_WEBHOOK_SIGNING_SECRET: "the webhook endpoint's Svix signing secret, whsec_…",
  CLERK_API_URL: 'Backend API base URL (default https://api.clerk.com)',
  REDIS_URL: 'redis:// URL of the queue and the shared state; unset starts a private local redis-server',
  MIRROR_DB_PATH: "SQLite file a replica keeps equal to the shared state, and the read API and library read (default ./data/mirror.db)",
  PORT: 'HTTP port (default 8080)',
  HOST: 'HTTP listen address (default 127.0.0.1)',
  MIRROR_API_KEY: 'bearer token for the read API (24+ characters); CLERK_SECRET_KEY is accepted too',
  LOG_LEVEL: 'fatal, error, warn, info (default), debug, trace or silent (any case)',
  BAPI_RATE_LIMIT: 'BAPI requests per window shared by all workers (default 30% of 1000 for sk_live_, of 100 for sk_test_)',
  BAPI_RATE_WINDOW_MS: 'length of that window in ms, at least 1000 (default 10000)',
  BAPI_TIMEOUT_MS: 'timeout of one BAPI request in ms, at least 100 (default 10000)',
  STALE_READ_WAIT_MS: 'when BAPI answers an older state than the webhook announced, fetch again (with backoff) for this long after the event before publishing its newest answer, in ms (default 30000; 0 publishes at once)',
  RECONCILE_INTERVAL_MS: 'how often the scheduled reconciliation runs, in ms, at least 60000 (default 3600000, hourly); 0 turns automatic maintenance off: no schedule and no automatic backfill of an unfilled shared state (the commands still work)',
  RECONCILE_MAX_AGE_MS: 'reconciliation re-fetches invitations Clerk has not confirmed for this long, in ms, at least 60000 (default 86400000)',
  REDIS_KEY_PREFIX: 'prefix (and Cluster hash tag) of every Redis key, so several mirrors can share one Redis (default clerk-invitation-mirror)',
  CHANGE_STREAM_RETENTION_MS: 'how long the change stream keeps a change, in ms; a replica offline for longer reloads the snapshot (default 129600000, 36 h)',
  REPLICA_MAX_LAG_MS: "a replica's /readyz fails while it is this far behind the shared state, in ms, at least 1000 (default 30000)",
  READ_THROUGH: '1: a read API lookup of an invitation the mirror has never seen asks Clerk (under the budget), publishes and answers it (default 0)',
  READ_THROUGH_LIMIT: 'read-through BAPI requests per BAPI_RATE_WINDOW_MS for every host together, within BAPI_RATE_LIMIT (default a tenth of it, at least 1)',
  MIRROR_ADMIN_KEY: "bearer (or Basic password) for the dashboard's retry, clean and delete actions (24+ characters); unset: the dashboard is read-only",
  SHUTDOWN_TIMEOUT_MS: 'after SIGTERM or SIGINT the process exits within this, in ms, at least 1000 (default 15000); active jobs get all but the last 3 s of it',
  REDIS_CONNECT_TIMEOUT_MS: 'how long start-up waits for Redis before exiting with one line, in ms, at least 100 (default 15000)',
  LOG_FORMAT: 'auto (default: readable lines on a terminal, JSON lines otherwise), json or pretty (any case)',
  HTTP_KEEP_ALIVE_TIMEOUT_MS: 'an idle keep-alive HTTP connection is closed after this, in ms, at least 1000 (default 10000); behind a load balancer that reuses connections, set it above the balancer\'s idle timeout',
  HTTP_MAX_CONNECTIONS: 'open HTTP connections at most; more are closed at once (default: the open-file limit minus 256, kept for Redis, SQLite and BAPI)',
};

function describe(name: EnvName): string {
  return envDescriptions[name];
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
