import { BapiNotFoundError } from '../bapi/errors.ts';
import type { BapiClient, ListResult } from '../bapi/client.ts';
import type { InvitationJSON } from '../clerk/types.ts';
import type { Logger } from '../logger.ts';
import type { BapiCaller } from '../bapi/caller.ts';
import { inParallel } from '../bapi/pool.ts';
import { ShapeProbe } from './shape.ts';

/**
 * `instance`: `GET /v1/organization_invitations`, position = offset of the next page.
 * `organizations`: `GET /v1/organizations` then each one's invitations, position = index of
 * the next organization (all of its invitations in one unit).
 */
export type ListMode = 'instance' | 'organizations';

export interface ListPosition {
  mode: ListMode;
  next: number;
}

export interface ListedPage {
  items: InvitationJSON[];
  /** When BAPI answered (our clock): the rows' confirmation time. */
  receivedAt: number;
}

export interface ListProgress {
  /** What `done`/`total` count. */
  unit: 'invitations' | 'organizations';
  done: number;
  total: number;
}

export interface ListerOptions {
  bapi: BapiClient;
  caller: BapiCaller;
  log: Logger;
  /** @defaultValue 500 (BAPI's maximum) */
  pageSize?: number;
  /** Requests in flight at once (all under the shared rate limit). @defaultValue 4 */
  concurrency?: number;
  signal?: AbortSignal;
}

/**
 * Called once per page, in completion order, one call at a time (the next waits for the
 * previous one to settle; after a failure no further call is made). `cursor` is set when
 * every unit before it is done (a contiguous watermark), so persisting it with the page's
 * rows means a restart redoes at most the pages that were in flight.
 */
export type PageSink = (page: ListedPage, cursor: ListPosition | undefined) => void | Promise<void>;

// Ascending: invitations created while we list land after the pages already read, so
// offsets of what we read do not move (only deletions shift them; reconciliation catches up).
const ORDER = '+created_at';

/**
 * Pages through every invitation of the instance with offset pagination, `concurrency`
 * pages at a time: the instance-wide list, or organizations and their lists when that
 * endpoint answers 404. Items come in the single GET's shape (see ShapeProbe).
 */
export class InvitationLister {
  private readonly pageSize: number;
  private readonly concurrency: number;
  /** Set once the instance-wide list answered 404 in this run. */
  mode: ListMode | undefined;

  constructor(private readonly opts: ListerOptions) {
    this.pageSize = opts.pageSize ?? 500;
    this.concurrency = Math.max(1, opts.concurrency ?? 4);
  }

  async run(start: ListPosition | undefined, sink: PageSink, onProgress: (p: ListProgress) => void = () => {}): Promise<void> {
    let chain: Promise<void> = Promise.resolve();
    const inOrder: PageSink = (page, cursor) => (chain = chain.then(() => sink(page, cursor)));
    return this.runIn(start, inOrder, onProgress);
  }

  private async runIn(start: ListPosition | undefined, sink: PageSink, onProgress: (p: ListProgress) => void): Promise<void> {
    if (start?.mode !== 'organizations') {
      const first = await this.firstInstancePage(start?.mode === 'instance' ? start.next : 0);
      if (first) {
        this.mode = 'instance';
        return this.runInstance(first.offset, first.page, sink, onProgress);
      }
      this.opts.log.info('GET /v1/organization_invitations is unavailable: listing organization by organization');
    }
    this.mode = 'organizations';
    return this.runOrganizations(start?.mode === 'organizations' ? start.next : 0, sink, onProgress);
  }

  private async firstInstancePage(offset: number): Promise<{ offset: number; page: ListResult<InvitationJSON> } | undefined> {
    try {
      return { offset, page: await this.instancePage(offset) };
    } catch (err) {
      if (err instanceof BapiNotFoundError) return undefined;
      throw err;
    }
  }

  private instancePage(offset: number): Promise<ListResult<InvitationJSON>> {
    const { bapi, caller } = this.opts;
    return caller.call('list instance invitations', () => bapi.listInstanceInvitations({ limit: this.pageSize, offset, orderBy: ORDER }));
  }

  private async runInstance(start: number, first: ListResult<InvitationJSON>, sink: PageSink, onProgress: (p: ListProgress) => void): Promise<void> {
    const shape = new ShapeProbe(this.opts.bapi, this.opts.caller, this.opts.log, 'instance');
    const marks = new Watermark(0);
    let total = first.totalCount;
    let done = start;
    const deliver = async (unit: number, page: ListResult<InvitationJSON>) => {
      total = Math.max(total, page.totalCount);
      const items = await shape.normalize(page.data);
      const moved = marks.complete(unit);
      done += page.data.length;
      await sink({ items, receivedAt: page.receivedAt }, moved === undefined ? undefined : { mode: 'instance', next: start + moved * this.pageSize });
      onProgress({ unit: 'invitations', done: Math.min(done, total), total });
    };
    onProgress({ unit: 'invitations', done: start, total });
    await deliver(0, first);
    let nextUnit = 1;
    // The total can grow while we list; workers keep taking pages until past the newest one.
    await inParallel(this.concurrency, async (stopped) => {
      while (!stopped()) {
        const unit = nextUnit++;
        const offset = start + unit * this.pageSize;
        if (offset >= total) return;
        await deliver(unit, await this.instancePage(offset));
      }
    });
  }

  private async runOrganizations(start: number, sink: PageSink, onProgress: (p: ListProgress) => void): Promise<void> {
    const { bapi, caller } = this.opts;
    const shape = new ShapeProbe(bapi, caller, this.opts.log, 'organization');
    const orgPages = new Map<number, Promise<ListResult<{ id: string }>>>();
    const orgPage = (n: number) => {
      let p = orgPages.get(n);
      if (!p) {
        p = caller.call('list organizations', () => bapi.listOrganizations({ limit: 500, offset: n * 500, orderBy: ORDER }));
        p.catch(() => orgPages.delete(n));
        orgPages.set(n, p);
      }
      return p;
    };
    const orgAt = async (index: number) => {
      const page = await orgPage(Math.floor(index / 500));
      return { id: page.data[index % 500]?.id, total: page.totalCount };
    };
    let total = (await orgAt(start)).total;
    const marks = new Watermark(0);
    let done = start;
    onProgress({ unit: 'organizations', done, total });
    let nextUnit = 0;
    await inParallel(this.concurrency, async (stopped) => {
      while (!stopped()) {
        const unit = nextUnit++;
        const index = start + unit;
        if (index >= total) return;
        const org = await orgAt(index);
        total = Math.max(total, org.total);
        const pages = org.id ? await this.organizationPages(org.id) : [];
        const normalized = await Promise.all(pages.map((p) => shape.normalize(p.data)));
        const moved = marks.complete(unit);
        // Rows commit page by page; the cursor moves with the organization's last page.
        const sunk = pages.map((p, i) => {
          const last = i === pages.length - 1;
          return sink({ items: normalized[i]!, receivedAt: p.receivedAt }, last && moved !== undefined ? { mode: 'organizations', next: start + moved } : undefined);
        });
        if (pages.length === 0 && moved !== undefined) sunk.push(sink({ items: [], receivedAt: Date.now() }, { mode: 'organizations', next: start + moved }));
        await Promise.all(sunk);
        onProgress({ unit: 'organizations', done: ++done, total });
      }
    });
  }

  /** Every page of one organization; none when it was deleted meanwhile. */
  private async organizationPages(organizationId: string): Promise<ListResult<InvitationJSON>[]> {
    const { bapi, caller } = this.opts;
    const pages: ListResult<InvitationJSON>[] = [];
    for (let offset = 0; ; offset += this.pageSize) {
      try {
        const page = await caller.call('list organization invitations', () =>
          bapi.listOrganizationInvitations(organizationId, { limit: this.pageSize, offset, orderBy: ORDER }),
        );
        pages.push(page);
        if (page.data.length === 0 || offset + this.pageSize >= page.totalCount) return pages;
      } catch (err) {
        if (err instanceof BapiNotFoundError) return pages;
        throw err;
      }
    }
  }

}

/** Lowest unit not yet complete, over units completed in any order (exported for its unit test). */
export class Watermark {
  private readonly pending = new Set<number>();
  constructor(private low: number) {}

  /** Marks `unit` done; returns the new watermark when it moved. */
  complete(unit: number): number | undefined {
    this.pending.add(unit);
    if (unit !== this.low) return undefined;
    while (this.pending.delete(this.low)) this.low++;
    return this.low;
  }
}
