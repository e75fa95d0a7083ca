import type { InvitationStatus } from '../clerk/types.ts';

/** BAPI's `organization` JSON, as `GET /v1/organizations` lists it. */
export interface OrganizationJSON {
  object: 'organization';
  id: string;
  name: string;
  slug: string;
  image_url: string;
  has_image: boolean;
  max_allowed_memberships: number;
  admin_delete_enabled: boolean;
  public_metadata: Record<string, unknown>;
  private_metadata: Record<string, unknown>;
  created_by: string | null;
  created_at: number;
  updated_at: number;
}

/** The trimmed organization Clerk embeds in webhook payloads and instance-wide list items. */
export interface PublicOrganizationDataJSON {
  object: 'organization';
  id: string;
  name: string;
  slug: string;
  image_url: string;
  has_image: boolean;
}

export interface PublicInviterDataJSON {
  user_id: string;
  first_name: string | null;
  last_name: string | null;
  image_url: string;
  has_image: boolean;
  identifier: string;
}

/** BAPI's `organization_invitation` JSON, keys in the order Clerk sends them (fixtures/organization-invitation.json). */
export interface SimInvitationJSON {
  object: 'organization_invitation';
  id: string;
  email_address: string;
  role: string;
  role_name: string;
  organization_id: string;
  inviter_id: string | null;
  public_inviter_data: PublicInviterDataJSON | null;
  status: InvitationStatus;
  public_metadata: Record<string, unknown>;
  private_metadata: Record<string, unknown>;
  url: string | null;
  expires_at: number | null;
  created_at: number;
  updated_at: number;
}

export type InvitationWithOrganizationJSON = SimInvitationJSON & { public_organization_data: PublicOrganizationDataJSON | null };

/** Clerk's default image for organizations without one (a base64url `{"type":"default"}`-style token). */
export const DEFAULT_ORG_IMAGE = 'https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCIsImlpZCI6Im9yZyJ9';
export const DEFAULT_USER_IMAGE = 'https://img.clerk.com/eyJ0eXBlIjoiZGVmYXVsdCJ9';

export function publicOrganizationData(org: OrganizationJSON): PublicOrganizationDataJSON {
  return { object: 'organization', id: org.id, name: org.name, slug: org.slug, image_url: org.image_url, has_image: org.has_image };
}

/** `org:billing_manager` → `Billing manager`: how Clerk names custom roles that have no display name set. */
export function roleName(role: string): string {
  if (role === 'org:admin') return 'Admin';
  if (role === 'org:member') return 'Member';
  const key = role.replace(/^org:/, '').replace(/_/g, ' ');
  return key.charAt(0).toUpperCase() + key.slice(1);
}

export function slugify(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

export const DAY_MS = 86_400_000;
