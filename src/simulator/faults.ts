import { seededRandom } from './random.ts';

/** How the simulated BAPI misbehaves. Rates are shares of BAPI requests in [0, 1]. */
export interface FaultOptions {
  /** Added before answering (also before dropping or erroring): fixed, or uniform in [min, max]. @defaultValue 0 */
  latencyMs: number | { min: number; max: number };
  /** Share answered 500, 502 or 503 with Clerk's error JSON. @defaultValue 0 */
  errorRate: number;
  /** Share never answered: the socket stays open until the client gives up or the simulator closes. @defaultValue 0 */
  hangRate: number;
  /** Share whose socket is destroyed without an answer. @defaultValue 0 */
  dropRate: number;
  /** Every BAPI request answers 429 until this simulator-clock time (ms since the epoch). @defaultValue undefined (off) */
  rateLimitBurst?: { untilMs: number };
}

export type FaultOutcome =
  | { kind: 'none'; latencyMs: number }
  | { kind: 'error'; status: 500 | 502 | 503; latencyMs: number }
  | { kind: 'hang' }
  | { kind: 'drop'; latencyMs: number };

const SERVER_ERROR_STATUSES = [500, 502, 503] as const;

export const DEFAULT_FAULTS: FaultOptions = { latencyMs: 0, errorRate: 0, hangRate: 0, dropRate: 0 };

/**
 * Picks each request's fate from its own seeded stream. Exactly three draws per request,
 * whatever the outcome, so one seed gives the same sequence of outcomes even when rates or
 * latency settings change between runs of a test.
 */
export class FaultInjector {
  private options: FaultOptions;
  private readonly random: () => number;

  constructor(seed: number, options: Partial<FaultOptions> = {}) {
    this.random = seededRandom(seed);
    this.options = { ...DEFAULT_FAULTS };
    this.set(options);
  }

  get current(): FaultOptions {
    return structuredClone(this.options);
  }

  set(f: Partial<FaultOptions>): void {
    for (const key of ['errorRate', 'hangRate', 'dropRate'] as const) {
      const v = f[key];
      if (v !== undefined && !(typeof v === 'number' && v >= 0 && v <= 1)) throw new RangeError(`${key} must be between 0 and 1`);
    }
    const lat = f.latencyMs;
    if (lat !== undefined && (typeof lat === 'number' ? !(lat >= 0) : !(lat.min >= 0 && lat.max >= lat.min))) {
      throw new RangeError('latencyMs must be a non-negative number or { min, max } with 0 <= min <= max');
    }
    const defined = Object.fromEntries(Object.entries(f).filter(([, v]) => v !== undefined)) as Partial<FaultOptions>;
    this.options = { ...this.options, ...defined };
    // `rateLimitBurst: null` over the control API switches the burst off.
    if ('rateLimitBurst' in f && !f.rateLimitBurst) delete this.options.rateLimitBurst;
  }

  /** True while a configured 429 burst lasts (compared against the simulator clock). */
  inBurst(now: number): number | undefined {
    const until = this.options.rateLimitBurst?.untilMs;
    return until !== undefined && now < until ? until : undefined;
  }

  decide(): FaultOutcome {
    const fate = this.random();
    const which = this.random();
    const spread = this.random();
    const { dropRate, hangRate, errorRate, latencyMs: lat } = this.options;
    const latencyMs = typeof lat === 'number' ? lat : lat.min + spread * (lat.max - lat.min);
    if (fate < dropRate) return { kind: 'drop', latencyMs };
    if (fate < dropRate + hangRate) return { kind: 'hang' };
    if (fate < dropRate + hangRate + errorRate) {
      return { kind: 'error', status: SERVER_ERROR_STATUSES[Math.floor(which * SERVER_ERROR_STATUSES.length)]!, latencyMs };
    }
    return { kind: 'none', latencyMs };
  }
}
