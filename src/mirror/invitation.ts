import type { OrganizationInvitation as SdkOrganizationInvitation } from '@clerk/backend';

type Json = Record<string, unknown>;

/**
 * Same constructor, field order and `raw` getter as `@clerk/backend`'s OrganizationInvitation
 * (which the SDK exports only as a type), so `{ ...result }`, `Object.keys`, `JSON.stringify`
 * and deep equality all see what the SDK would have returned.
 */
class OrganizationInvitation {
  private _raw: Json | null;
  constructor(
    readonly id: unknown,
    readonly emailAddress: unknown,
    readonly role: unknown,
    readonly roleName: unknown,
    readonly organizationId: unknown,
    readonly createdAt: unknown,
    readonly updatedAt: unknown,
    readonly expiresAt: unknown,
    readonly url: unknown,
    readonly status: unknown,
    readonly publicMetadata: unknown = {},
    readonly privateMetadata: unknown = {},
    readonly publicOrganizationData?: unknown,
  ) {
    this._raw = null;
  }

  get raw(): Json | null {
    return this._raw;
  }

  static fromJSON(data: Json): OrganizationInvitation {
    const res = new OrganizationInvitation(
      data.id,
      data.email_address,
      data.role,
      data.role_name,
      data.organization_id,
      data.created_at,
      data.updated_at,
      data.expires_at,
      data.url,
      data.status,
      data.public_metadata,
      data.private_metadata,
      data.public_organization_data,
    );
    res._raw = data;
    return res;
  }
}

/** Builds what `clerkClient.organizations.getOrganizationInvitation()` returns for `json`. */
export function toSdkInvitation(json: Json): SdkOrganizationInvitation {
  // The SDK class has a private member, which makes it nominal in TypeScript; ours has the
  // same runtime shape, so the cast is the one place the two are joined.
  return OrganizationInvitation.fromJSON(json) as unknown as SdkOrganizationInvitation;
}
