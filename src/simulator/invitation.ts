import { invalidParam } from './errors.ts';
import { newClerkId } from './ids.ts';
import { DAY_MS, roleName, type OrganizationJSON, type PublicInviterDataJSON, type SimInvitationJSON } from './model.ts';

export interface CreateInvitationInput {
  emailAddress: string;
  /** @defaultValue 'org:member' */
  role?: string;
  /** @defaultValue {} */
  publicMetadata?: Record<string, unknown>;
  /** @defaultValue {} */
  privateMetadata?: Record<string, unknown>;
  /** Clerk accepts 1 to 365. @defaultValue 30 */
  expiresInDays?: number;
  /**
   * Not a BAPI parameter: expire this many ms after creation instead (tests of expiry on
   * time cannot wait a day). Overrides `expiresInDays`.
   */
  expiresInMs?: number;
  /** @defaultValue undefined (then `inviter_id` and `public_inviter_data` are null) */
  inviterUserId?: string;
  /** When set, `url` is this with a `__clerk_ticket`. @defaultValue undefined (then `url` is null) */
  redirectUrl?: string;
}

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** A new pending invitation in BAPI's JSON, validated the way BAPI validates a create. */
export function buildInvitation(
  org: OrganizationJSON,
  input: CreateInvitationInput,
  ctx: { createdAt: number; inviter: PublicInviterDataJSON | null; random: () => number },
): SimInvitationJSON {
  if (!EMAIL.test(input.emailAddress)) throw invalidParam('email_address', `${JSON.stringify(input.emailAddress)} is not a valid email address`);
  const days = input.expiresInDays ?? 30;
  if (!Number.isSafeInteger(days) || days < 1 || days > 365) throw invalidParam('expires_in_days', 'expires_in_days must be an integer between 1 and 365');
  const role = input.role ?? 'org:member';
  const id = newClerkId('orginv', ctx.random);
  const ticket = newClerkId('tkt', ctx.random).slice('tkt_'.length);
  const { redirectUrl } = input;
  return {
    object: 'organization_invitation',
    id,
    email_address: input.emailAddress.toLowerCase(),
    role,
    role_name: roleName(role),
    organization_id: org.id,
    inviter_id: ctx.inviter?.user_id ?? null,
    public_inviter_data: ctx.inviter,
    status: 'pending',
    public_metadata: structuredClone(input.publicMetadata ?? {}),
    private_metadata: structuredClone(input.privateMetadata ?? {}),
    url: redirectUrl ? `${redirectUrl}${redirectUrl.includes('?') ? '&' : '?'}__clerk_ticket=${ticket}` : null,
    expires_at: ctx.createdAt + (input.expiresInMs ?? days * DAY_MS),
    created_at: ctx.createdAt,
    updated_at: ctx.createdAt,
  };
}
