import type { OrganizationInvitation } from '@clerk/backend';
import { createMirror, type GetOrganizationInvitationParams, type Mirror } from './mirror/mirror.ts';

export {
  createMirror,
  type CreateMirrorOptions,
  type GetOrganizationInvitationListParams,
  type GetOrganizationInvitationParams,
  type Lookup,
  type LookupOptions,
  type Mirror,
  MirrorBehindError,
  type PaginatedInvitations,
} from './mirror/mirror.ts';
export { createReplica, type CreateReplicaOptions, type ReplicaMirror } from './replica/create.ts';
export type { ReplicaPhase, ReplicaStatus } from './replica/status.ts';
export { loadConfig, ConfigError, type Config } from './config.ts';
export type { OrganizationInvitation } from '@clerk/backend';

let shared: Mirror | undefined;

/**
 * Drop-in for `clerkClient.organizations.getOrganizationInvitation(params)`, answered from the
 * mirror at `MIRROR_DB_PATH` (opened read-only on first call and kept open).
 */
export async function getOrganizationInvitation(params: GetOrganizationInvitationParams): Promise<OrganizationInvitation> {
  shared ??= createMirror({ readonly: true });
  return shared.getOrganizationInvitation(params);
}
