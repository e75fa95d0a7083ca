import { Webhook } from 'svix';
import { randomHttpRequest, randomId, randomOtherEvent } from './delivery-events.ts';
import { seededRandom } from './random.ts';

/** How the simulated Svix misbehaves. Every choice is drawn from the injected `random`. */
export interface DeliveryOptions {
  /**
   * Svix's retry schedule (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after the first try)
   * multiplied by this, so tests see the real shape of the schedule in milliseconds.
   * @defaultValue 0.001
   */
  retryScale: number;
  /**
   * Share of deliveries sent twice with the same svix-id, like a Svix retry after a lost 2xx:
   * the copy goes out one (scaled) first-retry interval after the first success.
   * @defaultValue 0
   */
  duplicateRate: number;
  /** Share of deliveries held back so that later ones overtake them. @defaultValue 0 */
  reorderRate: number;
  /**
   * Longest hold of a reordered delivery. The hold is uniform in [0, reorderWindowMs),
   * so that with `reorderRate` 1 held messages still overtake one another.
   * @defaultValue 50
   */
  reorderWindowMs: number;
  /** Added delay before each attempt: fixed, or uniform in [min, max]. @defaultValue 0 */
  delayMs: number | { min: number; max: number };
  /** Share of deliveries never attempted at all (Clerk says deliveries may never arrive). @defaultValue 0 */
  dropRate: number;
  /**
   * Chance that each `send` is accompanied by an unrelated Clerk event (user.created,
   * session.created, organization.updated, …) to the same endpoints.
   * @defaultValue 0
   */
  otherEventRate: number;
  /** Per-attempt HTTP timeout; Svix treats over ~15 s as a failure. @defaultValue 15000 */
  timeoutMs: number;
  /** `instance_id` of every envelope. @defaultValue a generated `ins_…` */
  instanceId: string;
}

export interface DeliveryStats {
  /** Deliveries started: one per message and endpoint (accompanying events included). */
  sent: number;
  /** Attempts answered 2xx, duplicates included. */
  delivered: number;
  /** Attempts that got a non-2xx, timed out or failed on the network. */
  failedAttempts: number;
  /** Deliveries never attempted (dropRate), or abandoned because their endpoint was removed. */
  dropped: number;
  /** Extra copies sent because of duplicateRate. */
  duplicated: number;
  /** Deliveries not finished yet (held, queued, in flight or waiting for a retry). */
  pending: number;
  /** Deliveries whose last scheduled attempt failed. */
  exhausted: number;
}

/** Svix's published schedule, in ms after the previous attempt. */
export const SVIX_RETRY_SCHEDULE_MS = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000] as const;

interface Message {
  id: string;
  body: string;
}

interface Copy {
  msg: Message;
  endpoint: string;
  /** Attempts made so far. */
  attempts: number;
  /** Per-delivery stream, so concurrent deliveries' draws never interleave and a seed replays exactly. */
  random: () => number;
  duplicate: boolean;
}

/**
 * Delivers Clerk-shaped events the way Svix does: signed, retried on failure with the same
 * svix-id, and optionally duplicated, reordered, delayed or lost, so the mirror's receiver
 * and worker are tested against everything the real sender may do.
 */
export class WebhookDelivery {
  private readonly webhook: Webhook;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly endpoints = new Set<string>();
  private options: DeliveryOptions;
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly inFlight = new Set<AbortController>();
  private idleWaiters: (() => void)[] = [];
  private closed = false;
  private readonly counts: DeliveryStats = { sent: 0, delivered: 0, failedAttempts: 0, dropped: 0, duplicated: 0, pending: 0, exhausted: 0 };

  constructor(opts: { signingSecret: string; endpoints?: string[]; random?: () => number; now?: () => number } & Partial<DeliveryOptions>) {
    const { signingSecret, endpoints = [], random = Math.random, now = Date.now, ...rest } = opts;
    this.webhook = new Webhook(signingSecret);
    this.random = random;
    this.now = now;
    for (const e of endpoints) this.endpoints.add(e);
    this.options = {
      retryScale: 0.001,
      duplicateRate: 0,
      reorderRate: 0,
      reorderWindowMs: 50,
      delayMs: 0,
      dropRate: 0,
      otherEventRate: 0,
      timeoutMs: 15_000,
      instanceId: rest.instanceId ?? randomId('ins', random),
    };
    this.setOptions(rest);
  }

  addEndpoint(url: string): void {
    this.endpoints.add(url);
  }

  /** Deliveries already under way to `url` are abandoned (counted as dropped) at their next attempt. */
  removeEndpoint(url: string): void {
    this.endpoints.delete(url);
  }

  /**
   * Applies to deliveries sent afterwards and to later attempts of those under way.
   * @throws RangeError for a rate outside [0, 1] or a negative duration.
   */
  setOptions(o: Partial<DeliveryOptions>): void {
    for (const key of ['duplicateRate', 'reorderRate', 'dropRate', 'otherEventRate'] as const) {
      const v = o[key];
      if (v !== undefined && !(v >= 0 && v <= 1)) throw new RangeError(`${key} must be between 0 and 1`);
    }
    for (const key of ['retryScale', 'reorderWindowMs', 'timeoutMs'] as const) {
      const v = o[key];
      if (v !== undefined && !(v >= 0 && Number.isFinite(v))) throw new RangeError(`${key} must be a non-negative number`);
    }
    const d = o.delayMs;
    if (d !== undefined && (typeof d === 'number' ? !(d >= 0) : !(d.min >= 0 && d.max >= d.min))) {
      throw new RangeError('delayMs must be a non-negative number or { min, max } with 0 <= min <= max');
    }
    const defined = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<DeliveryOptions>;
    this.options = { ...this.options, ...defined };
  }

  /**
   * Fire and forget: wraps `data` in Clerk's envelope and delivers it to every endpoint.
   * @returns the message's svix-id (shared by its retries and duplicates).
   */
  send(type: string, data: Record<string, unknown>): string {
    // One draw from the shared stream seeds everything about this message.
    const random = seededRandom(Math.floor(this.random() * 2 ** 32));
    const id = this.enqueue(type, data, random);
    if (random() < this.options.otherEventRate) {
      const other = randomOtherEvent(random, this.now(), data);
      this.enqueue(other.type, other.data, random);
    }
    return id;
  }

  /** Resolves when nothing is queued, held, in flight or waiting for a retry (or once closed). */
  idle(): Promise<void> {
    if (this.counts.pending === 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stats(): DeliveryStats {
    return { ...this.counts };
  }

  /** Cancels timers and aborts in-flight requests; whatever was pending is abandoned. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const c of this.inFlight) c.abort(new Error('webhook delivery closed'));
    this.inFlight.clear();
    this.counts.pending = 0;
    this.wakeIdle();
  }

  private enqueue(type: string, data: Record<string, unknown>, random: () => number): string {
    const id = randomId('msg', random);
    const envelope = {
      data,
      object: 'event',
      type,
      timestamp: this.now(),
      instance_id: this.options.instanceId,
      event_attributes: { http_request: randomHttpRequest(random) },
    };
    const msg: Message = { id, body: JSON.stringify(envelope) };
    if (this.closed) return id;
    for (const endpoint of this.endpoints) {
      const copy: Copy = { msg, endpoint, attempts: 0, random: seededRandom(Math.floor(random() * 2 ** 32)), duplicate: false };
      this.counts.sent++;
      this.counts.pending++;
      if (copy.random() < this.options.dropRate) {
        this.finish('dropped');
        continue;
      }
      copy.duplicate = copy.random() < this.options.duplicateRate;
      const hold = copy.random() < this.options.reorderRate ? copy.random() * this.options.reorderWindowMs : 0;
      this.schedule(copy, hold);
    }
    return id;
  }

  /** Waits `baseMs` plus the configured per-attempt delay, then attempts. */
  private schedule(copy: Copy, baseMs: number): void {
    if (this.closed) return;
    const d = this.options.delayMs;
    const extra = typeof d === 'number' ? d : d.min + copy.random() * (d.max - d.min);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      void this.attempt(copy);
    }, Math.max(0, baseMs + extra));
    this.timers.add(timer);
  }

  private async attempt(copy: Copy): Promise<void> {
    if (this.closed) return;
    if (!this.endpoints.has(copy.endpoint)) {
      this.finish('dropped');
      return;
    }
    copy.attempts++;
    const ok = await this.post(copy);
    if (this.closed) return;
    if (ok) {
      this.counts.delivered++;
      if (copy.duplicate) {
        // The copy Svix sends when it never saw our 2xx: a fresh delivery, same svix-id and body.
        this.counts.duplicated++;
        this.counts.pending++;
        this.schedule({ ...copy, attempts: 0, duplicate: false }, this.retryDelay(0));
      }
      this.finish();
      return;
    }
    this.counts.failedAttempts++;
    if (copy.attempts > SVIX_RETRY_SCHEDULE_MS.length) {
      this.finish('exhausted');
      return;
    }
    this.schedule(copy, this.retryDelay(copy.attempts - 1));
  }

  private retryDelay(index: number): number {
    return SVIX_RETRY_SCHEDULE_MS[index]! * this.options.retryScale;
  }

  /** One POST; true on a 2xx within the timeout, false on anything else. */
  private async post(copy: Copy): Promise<boolean> {
    const controller = new AbortController();
    this.inFlight.add(controller);
    try {
      const at = this.now();
      const res = await fetch(copy.endpoint, {
        method: 'POST',
        body: copy.msg.body,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Svix-Webhooks/1.0 (clerk-invitation-mirror simulator)',
          'svix-id': copy.msg.id,
          'svix-timestamp': String(Math.floor(at / 1000)),
          'svix-signature': this.webhook.sign(copy.msg.id, new Date(at), copy.msg.body),
        },
        signal: AbortSignal.any([controller.signal, AbortSignal.timeout(this.options.timeoutMs)]),
        redirect: 'manual',
      });
      // Drain so the keep-alive socket is reused; Svix ignores the body.
      await res.arrayBuffer();
      return res.status >= 200 && res.status < 300;
    } catch {
      return false;
    } finally {
      this.inFlight.delete(controller);
    }
  }

  private finish(outcome?: 'dropped' | 'exhausted'): void {
    if (outcome) this.counts[outcome]++;
    this.counts.pending--;
    if (this.counts.pending === 0) this.wakeIdle();
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}
