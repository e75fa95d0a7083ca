import type { DeliveryStats } from './delivery.ts';
import type { RateWindow } from './rate-limit.ts';

/** What the simulated BAPI saw. The control API (`/_control/…`) is never counted. */
export interface SimulatorStats {
  /** BAPI requests received, whatever became of them. */
  requests: number;
  /** Requests per route key (`GET /v1/organizations/:organization_id/invitations`, …; `unmatched` for unknown paths). */
  byRoute: Record<string, number>;
  /** Answers per HTTP status, plus `hang` and `drop` for requests never answered. */
  byStatus: Record<string, number>;
  /** 429 answers, bursts included. */
  rateLimited: number;
  /** Single-invitation GETs per invitation id (every call, whatever its answer). */
  getInvitationCalls: Record<string, number>;
  /** Rate-limit windows (most recent 1000), oldest first. */
  rateWindows: RateWindow[];
  /** The most requests let through in any one window: never above the limit. */
  maxAcceptedPerWindow: number;
  rateLimit: { limit: number; windowMs: number };
  delivery: DeliveryStats;
}

type Counts = Pick<SimulatorStats, 'requests' | 'byRoute' | 'byStatus' | 'rateLimited' | 'getInvitationCalls'>;

const bump = (record: Record<string, number>, key: string) => (record[key] = (record[key] ?? 0) + 1);

export class StatsCollector {
  private counts: Counts = StatsCollector.empty();

  private static empty(): Counts {
    return { requests: 0, byRoute: {}, byStatus: {}, rateLimited: 0, getInvitationCalls: {} };
  }

  request(routeKey: string): void {
    this.counts.requests++;
    bump(this.counts.byRoute, routeKey);
  }

  invitationGet(invitationId: string): void {
    bump(this.counts.getInvitationCalls, invitationId);
  }

  outcome(status: number | 'hang' | 'drop'): void {
    bump(this.counts.byStatus, String(status));
    if (status === 429) this.counts.rateLimited++;
  }

  snapshot(): Counts {
    return structuredClone(this.counts);
  }

  reset(): void {
    this.counts = StatsCollector.empty();
  }
}
