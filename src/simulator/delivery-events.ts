/**
 * Ids and unrelated Clerk events for the simulated Svix delivery. Everything is drawn from
 * the `random` passed in, so one seed replays the same ids and the same extra events.
 */

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/**
 * A Clerk/Svix-style id: `prefix_` and 27 base62 characters, the first a '2' as in KSUIDs of
 * the current epoch range, so ids look like production ones in logs.
 */
export function randomId(prefix: string, random: () => number): string {
  let s = '2';
  for (let i = 1; i < 27; i++) s += BASE62[Math.floor(random() * 62)];
  return `${prefix}_${s}`;
}

const pick = <T>(items: readonly T[], random: () => number): T => items[Math.floor(random() * items.length)]!;

/** Request attributes Clerk attaches to each event; TEST-NET addresses so nothing real is named. */
export function randomHttpRequest(random: () => number): { client_ip: string; user_agent: string } {
  return {
    client_ip: `192.0.2.${1 + Math.floor(random() * 254)}`,
    user_agent: pick(
      [
        'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/138.0 Safari/537.36',
        'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
        '@clerk/backend@3.25.0',
      ],
      random,
    ),
  };
}

export const OTHER_EVENT_TYPES = [
  'user.created',
  'user.updated',
  'session.created',
  'session.ended',
  'organization.updated',
  'organizationMembership.created',
  'email.created',
] as const;

/**
 * An event of a type the mirror must acknowledge and ignore. Shapes are trimmed to what makes
 * them recognisable; e-mail addresses use example.invalid so no test data can reach a real inbox.
 */
export function randomOtherEvent(
  random: () => number,
  now: number,
  related: Record<string, unknown>,
): { type: string; data: Record<string, unknown> } {
  const type = pick(OTHER_EVENT_TYPES, random);
  const orgId = typeof related.organization_id === 'string' ? related.organization_id : randomId('org', random);
  const userId = randomId('user', random);
  switch (type) {
    case 'user.created':
    case 'user.updated':
      return {
        type,
        data: {
          object: 'user',
          id: userId,
          email_addresses: [{ object: 'email_address', id: randomId('idn', random), email_address: `${userId.toLowerCase()}@example.invalid` }],
          created_at: now,
          updated_at: now,
        },
      };
    case 'session.created':
    case 'session.ended':
      return {
        type,
        data: { object: 'session', id: randomId('sess', random), user_id: userId, status: type === 'session.ended' ? 'ended' : 'active', created_at: now, updated_at: now },
      };
    case 'organization.updated':
      return { type, data: { object: 'organization', id: orgId, name: 'Analytical Engines', slug: 'analytical-engines', created_at: now, updated_at: now } };
    case 'organizationMembership.created':
      return {
        type,
        data: { object: 'organization_membership', id: randomId('orgmem', random), role: 'org:member', organization: { object: 'organization', id: orgId }, created_at: now, updated_at: now },
      };
    case 'email.created':
      return { type, data: { object: 'email', id: randomId('ema', random), slug: 'organization_invitation', status: 'queued', to_email_address: 'someone@example.invalid' } };
  }
}
