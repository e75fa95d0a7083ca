import { BapiNotFoundError } from '../bapi/errors.ts';
import type { BapiClient } from '../bapi/client.ts';
import type { InvitationJSON } from '../clerk/types.ts';
import type { Logger } from '../logger.ts';
import type { BapiCaller } from '../bapi/caller.ts';

/**
 * List items and the single GET need not have the same fields: the instance-wide list adds
 * `public_organization_data`, which Clerk's spec leaves out of the single GET (unconfirmed
 * what the live API does). The mirror must answer what the single GET answers, so once per
 * run and list kind one listed invitation is fetched on its own, and the fields only the
 * list has are dropped from every item of that list. Either answer of the live API works:
 * if the single GET has them too, nothing is dropped.
 */
export class ShapeProbe {
  private extra: Promise<string[]> | undefined;

  constructor(
    private readonly bapi: BapiClient,
    private readonly caller: BapiCaller,
    private readonly log: Logger,
    private readonly kind: string,
  ) {}

  /** The items in the single GET's shape. */
  async normalize(items: InvitationJSON[]): Promise<InvitationJSON[]> {
    if (items.length === 0) return items;
    this.extra ??= this.probe(items);
    let extra: string[];
    try {
      extra = await this.extra;
    } catch (err) {
      // Let a later page probe again rather than keep a failure.
      this.extra = undefined;
      throw err;
    }
    if (extra.length === 0) return items;
    return items.map((item) => {
      const copy: Record<string, unknown> = { ...item };
      for (const k of extra) delete copy[k];
      return copy as InvitationJSON;
    });
  }

  private async probe(items: InvitationJSON[]): Promise<string[]> {
    for (const item of items.slice(0, 5)) {
      try {
        const got = await this.caller.call('probe single GET', () => this.bapi.getOrganizationInvitation(item.organization_id, item.id));
        const single = new Set(Object.keys(got.invitation));
        const extra = Object.keys(item).filter((k) => !single.has(k));
        const missing = [...single].filter((k) => !(k in item));
        if (missing.length) this.log.warn({ list: this.kind, missing }, 'list items lack fields the single GET has; webhook re-fetches will fill them in');
        this.log.debug({ list: this.kind, dropped: extra }, 'list item shape probed');
        return extra;
      } catch (err) {
        if (!(err instanceof BapiNotFoundError)) throw err;
      }
    }
    this.log.warn({ list: this.kind }, 'could not probe the single GET shape; list items are stored as listed');
    return [];
  }
}
