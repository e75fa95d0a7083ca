/**
 * - `bootstrapping`: loading the snapshot; the file is not yet a copy of the state.
 * - `following`: caught up at least once, applying changes as they come.
 * - `stale`: serving what it has, but that is not (or no longer known to be) the shared
 *   state: Redis lost the state and it has not been filled again, or a failure stops it.
 */
export type ReplicaPhase = 'bootstrapping' | 'following' | 'stale';

export interface ReplicaStatus {
  state: ReplicaPhase;
  /** Why it is stale or not ready, in words. */
  reason: string | undefined;
  /** Epoch and position of the file. */
  epoch: string | undefined;
  offset: string | undefined;
  seq: number | undefined;
  /** The shared state has had a complete pass over Clerk's lists (until then it may lack invitations). */
  filled: boolean;
  /** Changes published but not applied here; undefined when unknown (Redis unreachable). */
  entriesBehind: number | undefined;
  /** Age of the oldest change not applied here (0 when caught up), or the time since Redis last answered. */
  secondsBehind: number;
  /** Rows applied and snapshot loads since start. */
  applied: number;
  bootstraps: number;
  /** Writes to the file that failed (and were retried) since start: disk full, I/O error, a lock held elsewhere… */
  writeFailures: number;
  /** Times the file was opened again since start because it was deleted or replaced under the replica. */
  reopens: number;
}

/**
 * Why a replica with this status should not be routed reads, or true.
 * @internal
 */
export function replicaReadiness(s: ReplicaStatus, maxLagSeconds: number): true | string {
  if (s.state === 'bootstrapping') {
    return s.reason && s.reason !== 'loading the snapshot' ? `loading the snapshot from the shared state: ${s.reason}` : 'loading the snapshot from the shared state';
  }
  if (s.state === 'stale') return s.reason ?? 'stale';
  if (!s.filled) return 'the shared state has not been filled by a backfill yet';
  if (s.secondsBehind > maxLagSeconds) return `${s.secondsBehind.toFixed(1)} s behind the shared state (${s.entriesBehind ?? 'unknown'} changes)`;
  return true;
}
