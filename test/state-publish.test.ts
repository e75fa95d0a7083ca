import { afterAll, describe, expect, it } from 'vitest';
import { contentHash, decodeEntry, encodeTail, fieldsOf } from '../src/state/codec.ts';
import { EpochChangedError, StatePublisher, type InvitationState } from '../src/state/publisher.ts';
import { RECORDS, SharedState } from '../src/state/shared-state.ts';
import { invitation } from './helpers/fixtures.ts';
import { isolatedKeys, testRedis } from './helpers/state.ts';

const redis = testRedis();
afterAll(() => redis.quit());

function rig(name: string, retentionMs = 86_400_000) {
  const keys = isolatedKeys(name);
  const publisher = new StatePublisher({ connection: redis, keys, retentionMs });
  const state = new SharedState(redis, keys);
  const streamEntries = async () => ((await redis.xrange(keys.changes, '-', '+')) as [string, string[]][]).map(([id, kv]) => decodeEntry(id, kv));
  /** Every change of the stream, with the entry it came in. */
  const entries = async () => (await streamEntries()).flatMap((e) => e.changes.map((c) => ({ ...c, entry: e })));
  return { keys, publisher, state, entries, streamEntries };
}

const present = (overrides: Record<string, unknown>, observedAt: number, raw?: string): InvitationState => ({
  kind: 'present',
  invitation: invitation(overrides),
  raw,
  observedAt,
  source: 'webhook',
});

describe('publishing a state', () => {
  it('stores it and appends it to the stream only when it is new or newer', async () => {
    const { publisher, state, entries } = rig('order');
    const v1 = { id: 'orginv_a1', updated_at: 1000 };
    expect((await publisher.publish([present(v1, 10)])).outcomes).toEqual(['inserted']);
    expect((await publisher.publish([present(v1, 20)])).outcomes).toEqual(['unchanged']);
    expect((await publisher.publish([present({ ...v1, updated_at: 999, status: 'revoked' }, 30)])).outcomes).toEqual(['stale']);
    expect((await publisher.publish([present({ ...v1, updated_at: 1001, status: 'accepted' }, 40)])).outcomes).toEqual(['updated']);
    const held = (await state.get('orginv_a1'))!;
    expect(held).toMatchObject({ updatedAt: 1001, confirmedAt: 40, deleted: false, fields: { status: 'accepted', source: 'webhook' } });
    expect(JSON.parse(held.raw!)).toStrictEqual(invitation({ ...v1, updated_at: 1001, status: 'accepted' }));
    const e = await entries();
    expect(e.map((x) => [x.seq, x.state.updatedAt])).toEqual([
      [1, 1000],
      [2, 1001],
    ]);
    // Each entry names the one before it, so a reader can tell it missed some.
    expect(e[0]!.entry.previous).toBe('0-0');
    expect(e[1]!.entry.previous).toBe(e[0]!.entry.streamId);
    expect(await state.meta()).toMatchObject({ seq: 2, last: e[1]!.entry.streamId });
  });

  it('the same version with other content wins when observed later, and only then', async () => {
    const { publisher, state, entries } = rig('same-version');
    const base = { id: 'orginv_b1', updated_at: 5000, role_name: 'Member' };
    await publisher.publish([present(base, 100)]);
    // A renamed role: role_name changes, updated_at does not.
    expect((await publisher.publish([present({ ...base, role_name: 'Teammate' }, 200)])).outcomes).toEqual(['updated']);
    // An answer observed before that one, published late, does not undo it.
    expect((await publisher.publish([present(base, 150)])).outcomes).toEqual(['stale']);
    expect(JSON.parse((await state.get('orginv_b1'))!.raw!).role_name).toBe('Teammate');
    expect((await entries()).length).toBe(2);
  });

  it('the same content in other bytes is not a change', async () => {
    const { publisher, entries } = rig('bytes');
    const inv = invitation({ id: 'orginv_c1', updated_at: 7000 });
    await publisher.publish([present(inv, 1, JSON.stringify(inv))]);
    expect((await publisher.publish([present(inv, 2, JSON.stringify(inv, null, 2))])).outcomes).toEqual(['unchanged']);
    expect((await entries()).length).toBe(1);
    expect(contentHash(inv)).toBe(contentHash(JSON.parse(JSON.stringify(inv, null, 2))));
  });

  it('a 404 tombstones at the newest known version; an older state cannot revive it, a later observation of the same version can', async () => {
    const { publisher, state } = rig('tombstone');
    await publisher.publish([present({ id: 'orginv_d1', updated_at: 100 }, 10)]);
    const gone: InvitationState = { kind: 'gone', id: 'orginv_d1', organizationId: invitation().organization_id, knownUpdatedAt: 90, observedAt: 20, source: 'webhook' };
    expect((await publisher.publish([gone])).outcomes).toEqual(['updated']);
    const t = (await state.get('orginv_d1'))!;
    expect(t).toMatchObject({ deleted: true, updatedAt: 100 });
    // The last known JSON stays with the tombstone.
    expect(JSON.parse(t.raw!).id).toBe('orginv_d1');
    expect((await publisher.publish([gone])).outcomes).toEqual(['unchanged']);
    expect((await publisher.publish([present({ id: 'orginv_d1', updated_at: 99 }, 30)])).outcomes).toEqual(['stale']);
    // Observed before the 404: the 404 stands.
    expect((await publisher.publish([present({ id: 'orginv_d1', updated_at: 100 }, 15)])).outcomes).toEqual(['stale']);
    // Observed after it (a spurious 404): revived.
    expect((await publisher.publish([present({ id: 'orginv_d1', updated_at: 100 }, 40)])).outcomes).toEqual(['updated']);
    expect((await state.get('orginv_d1'))!.deleted).toBe(false);
  });

  it('a 404 for an invitation never seen is stored as a tombstone', async () => {
    const { publisher, state, entries } = rig('never-seen');
    const out = await publisher.publish([{ kind: 'gone', id: 'orginv_e1', organizationId: 'org_e', knownUpdatedAt: 55, observedAt: 5, source: 'reconcile' }]);
    expect(out.outcomes).toEqual(['inserted']);
    expect(await state.get('orginv_e1')).toMatchObject({ deleted: true, updatedAt: 55, raw: null, fields: { organizationId: 'org_e' } });
    expect((await entries())[0]!.state.deleted).toBe(true);
  });

  it('a dry run compares without writing, and can return what was held', async () => {
    const { publisher, state, entries } = rig('dry');
    await publisher.publish([present({ id: 'orginv_f1', updated_at: 1, status: 'pending' }, 1)]);
    const dry = await publisher.publish([present({ id: 'orginv_f1', updated_at: 2, status: 'expired' }, 2), present({ id: 'orginv_f2', updated_at: 1 }, 2)], {
      dryRun: true,
      withPrevious: true,
    });
    expect(dry.outcomes).toEqual(['updated', 'inserted']);
    expect(dry.previous![0]).toMatchObject({ updatedAt: 1, fields: { status: 'pending' } });
    expect(dry.previous![1]).toBeUndefined();
    expect((await state.get('orginv_f1'))!.updatedAt).toBe(1);
    expect(await state.get('orginv_f2')).toBeUndefined();
    expect((await entries()).length).toBe(1);
  });

  it("an organization's existence goes into its own hash and the same stream; a listing's end is noted in meta, never by a dry run", async () => {
    const { keys, publisher, state, entries } = rig('organizations');
    const org = (id: string, gone: boolean, observedAt: number) => ({ kind: 'organization', id, gone, observedAt, source: 'backfill' }) as const;
    const { outcomes } = await publisher.publish([org('org_2exists', false, 10), present({ id: 'orginv_o1', updated_at: 5 }, 10)]);
    expect(outcomes).toEqual(['inserted', 'inserted']);
    expect(await redis.hkeys(keys.organizations)).toEqual(['org_2exists']);
    expect(await redis.hkeys(keys.snapshot)).toEqual(['orginv_o1']);
    expect((await entries()).map((c) => c.state.id)).toEqual(['org_2exists', 'orginv_o1']);
    // Listed again, or renamed: existence did not change, nothing goes into the stream.
    expect((await publisher.publish([org('org_2exists', false, 20)])).outcomes).toEqual(['unchanged']);
    expect((await state.meta())!.organizationsListedSeq).toBeUndefined();
    await publisher.publish([], { organizationsListed: true, dryRun: true });
    expect((await state.meta())!.organizationsListedSeq).toBeUndefined();
    await publisher.publish([], { organizationsListed: true });
    expect((await state.meta())!.organizationsListedSeq).toBe(2);
    // A 404 observed later wins; a list page observed before it cannot bring it back.
    expect((await publisher.publish([org('org_2exists', true, 30)])).outcomes).toEqual(['updated']);
    expect((await publisher.publish([org('org_2exists', false, 25)])).outcomes).toEqual(['stale']);
    expect(await state.get('org_2exists')).toMatchObject({ deleted: true, confirmedAt: 30 });
    expect((await entries()).map((c) => [c.state.id, c.state.deleted])).toEqual([['org_2exists', false], ['orginv_o1', false], ['org_2exists', true]]);
  });

  it('batches apply in order, one script run and one stream entry for all', async () => {
    const { publisher, entries, streamEntries } = rig('batch');
    const out = await publisher.publish([present({ id: 'orginv_g1', updated_at: 1 }, 1), present({ id: 'orginv_g1', updated_at: 3 }, 1), present({ id: 'orginv_g1', updated_at: 2 }, 1)]);
    expect(out.outcomes).toEqual(['inserted', 'updated', 'stale']);
    expect((await entries()).map((e) => [e.seq, e.state.updatedAt])).toEqual([
      [1, 1],
      [2, 3],
    ]);
    expect(await streamEntries()).toHaveLength(1);
  });

  it('keeps raw JSON of any shape intact through the stream (newlines, separators, non-ASCII)', async () => {
    const { publisher, entries } = rig('raw');
    const inv = invitation({ id: 'orginv_m1', updated_at: 9, public_metadata: { note: 'a|b\nc ✓ 💥', sep: '\u001e' } });
    const raw = `${JSON.stringify(inv, null, 2)}\n`;
    await publisher.publish([present(inv, 1, raw), present({ id: 'orginv_m2', updated_at: 9 }, 1)]);
    const e = await entries();
    expect(e.map((x) => x.state.id)).toEqual(['orginv_m1', 'orginv_m2']);
    expect(e[0]!.state.raw).toBe(raw);
    expect(JSON.parse(e[0]!.state.raw!)).toStrictEqual(inv);
  });

  it('records and cursors are written only into the epoch the caller worked on', async () => {
    const { keys, publisher, state } = rig('epoch');
    const { epoch } = await publisher.publish([present({ id: 'orginv_h1', updated_at: 1 }, 1)], { record: { name: RECORDS.backfillCursor, value: { next: 1 } } });
    expect(await state.record(RECORDS.backfillCursor)).toEqual({ next: 1 });
    await state.writeRecords(epoch!, { [RECORDS.backfillCursor]: undefined }, { filled: true });
    expect(await state.record(RECORDS.backfillCursor)).toBeUndefined();
    expect((await state.meta())!.filledAt).toBeGreaterThan(0);

    // Redis loses the state: the next write starts a new epoch, unfilled.
    await redis.del(keys.meta, keys.snapshot, keys.changes, keys.records);
    await expect(publisher.publish([present({ id: 'orginv_h2', updated_at: 1 }, 1)], { expectEpoch: epoch })).rejects.toBeInstanceOf(EpochChangedError);
    const meta = (await state.meta())!;
    expect(meta.epoch).not.toBe(epoch);
    expect(meta.filledAt).toBeUndefined();
    await expect(state.writeRecords(epoch!, { x: 1 }, { filled: true })).rejects.toBeInstanceOf(EpochChangedError);
    expect((await state.meta())!.filledAt).toBeUndefined();
  });

  it('trims the stream by age, keeping the chain of previous ids intact for what stays', async () => {
    const { publisher, streamEntries } = rig('trim', 1);
    for (let i = 0; i < 300; i++) {
      await publisher.publish([present({ id: `orginv_t${i}`, updated_at: 1 }, 1)]);
      if (i % 50 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    const e = await streamEntries();
    expect(e.length).toBeLessThan(300);
    for (let i = 1; i < e.length; i++) expect(e[i]!.previous).toBe(e[i - 1]!.streamId);
    expect(e.at(-1)!.lastSeq).toBe(300);
  });

  it("answers the skip rule for many invitations in one call: stored version, tombstone, announced version, the organization's recent announcements", async () => {
    const { keys, publisher, state } = rig('held');
    const of = (...ids: string[]) => ids.map((invitationId) => ({ invitationId, organizationId: invitationId === 'orginv_k3' ? 'org_other' : 'org_k' }));
    expect(await state.held(of('orginv_k1'))).toEqual([{ stored: undefined, announced: undefined, recent: 0 }]);
    await publisher.publish([present({ id: 'orginv_k1', updated_at: 42 }, 1), { kind: 'gone', id: 'orginv_k2', organizationId: 'org_k', knownUpdatedAt: 7, observedAt: 1, source: 'webhook' }]);
    await redis.set(keys.announced('orginv_k1'), '43');
    await redis.zadd(keys.recentlyAnnounced('org_k'), 100, 'orginv_k1', 200, 'orginv_k2', 300, 'orginv_k9');
    expect(await state.held(of('orginv_k1', 'orginv_k2', 'orginv_k3'), 150)).toEqual([
      { stored: { updatedAt: 42, deleted: false }, announced: 43, recent: 2 },
      { stored: { updatedAt: 7, deleted: true }, announced: undefined, recent: 2 },
      { stored: undefined, announced: undefined, recent: 0 },
    ]);
    // What a batch looks at.
    expect(await state.recentlyAnnounced('org_k', 150)).toEqual(['orginv_k2', 'orginv_k9']);
  });
});

describe('states caused by events that name the wrong organization or a far-future updated_at (issue 16)', () => {
  const FAR_FUTURE = 9_999_999_999_999;
  const gone = (id: string, organizationId: string, observedAt: number, knownUpdatedAt?: number): InvitationState => ({ kind: 'gone', id, organizationId, knownUpdatedAt, observedAt, source: 'webhook' });
  /** A tombstone as releases before this one stored it: its version an event's `updated_at`, not BAPI's. */
  const legacyTombstone = async (keys: ReturnType<typeof rig>['keys'], inv: ReturnType<typeof invitation>, version: number, observedAt: number) => {
    await redis.hset(keys.snapshot, inv.id, `${version}|${observedAt}|1|${contentHash(inv)}|${encodeTail(fieldsOf(inv, 'webhook'), JSON.stringify(inv))}`);
  };

  it('a 404 under another organization than the one the shared state holds the invitation under tombstones nothing', async () => {
    const { publisher, state, entries } = rig('other-org');
    const live = present({ id: 'orginv_w1', organization_id: 'org_right', updated_at: 100 }, 10);
    await publisher.publish([live]);
    // BAPI 404s (org_wrong, orginv_w1): that says the invitation is not in org_wrong, nothing more.
    expect((await publisher.publish([gone('orginv_w1', 'org_wrong', 20, FAR_FUTURE)])).outcomes).toEqual(['stale']);
    expect(await state.get('orginv_w1')).toMatchObject({ deleted: false, updatedAt: 100, confirmedAt: 10, fields: { organizationId: 'org_right' } });
    // A tombstone under another organization is left alone as well.
    await publisher.publish([gone('orginv_w1', 'org_right', 30)]);
    expect((await publisher.publish([gone('orginv_w1', 'org_wrong', 40)])).outcomes).toEqual(['stale']);
    expect(await state.get('orginv_w1')).toMatchObject({ deleted: true, confirmedAt: 30, fields: { organizationId: 'org_right' } });
    expect((await entries()).map((e) => [e.state.deleted, e.state.fields.organizationId])).toEqual([
      [false, 'org_right'],
      [true, 'org_right'],
    ]);

    // Nothing known yet: the 404 stores a tombstone under the organization it was asked
    // under, which does not keep BAPI's answer under the invitation's own organization out,
    // whenever that was observed.
    expect((await publisher.publish([gone('orginv_w2', 'org_wrong', 50, FAR_FUTURE)])).outcomes).toEqual(['inserted']);
    expect((await publisher.publish([present({ id: 'orginv_w2', organization_id: 'org_right', updated_at: 100 }, 45)])).outcomes).toEqual(['updated']);
    expect(await state.get('orginv_w2')).toMatchObject({ deleted: false, updatedAt: 100, fields: { organizationId: 'org_right' } });
  });

  it("a tombstone keeps BAPI's version, never a 404's own: a state observed after it revives it, one observed before it does not", async () => {
    const { publisher, state } = rig('tombstone-version');
    await publisher.publish([present({ id: 'orginv_v1', updated_at: 100 }, 10)]);
    // The 404 of a job whose event said updated_at 9999999999999.
    expect((await publisher.publish([gone('orginv_v1', invitation().organization_id, 20, FAR_FUTURE)])).outcomes).toEqual(['updated']);
    expect(await state.get('orginv_v1')).toMatchObject({ deleted: true, updatedAt: 100 });
    // A list page read before the 404 (a newer version, but older news) stays out.
    expect((await publisher.publish([present({ id: 'orginv_v1', updated_at: 150 }, 15)])).outcomes).toEqual(['stale']);
    // A state older than the one BAPI gave before the 404 (a lagging read) stays out too.
    expect((await publisher.publish([present({ id: 'orginv_v1', updated_at: 99 }, 30)])).outcomes).toEqual(['stale']);
    // BAPI's state, observed after the 404, wins.
    expect((await publisher.publish([present({ id: 'orginv_v1', updated_at: 100 }, 40)])).outcomes).toEqual(['updated']);
    expect(await state.get('orginv_v1')).toMatchObject({ deleted: false, updatedAt: 100 });
  });

  it("a tombstone an older release stamped with an event's version is revived by BAPI's state observed after it", async () => {
    const { keys, publisher, state } = rig('legacy-tombstone');
    const far = invitation({ id: 'orginv_l1', updated_at: 100 });
    const near = invitation({ id: 'orginv_l2', updated_at: 100 });
    await legacyTombstone(keys, far, FAR_FUTURE, 20);
    await legacyTombstone(keys, near, 5000, 20);
    // What BAPI lists, observed later: the versions it gave before, not the events'.
    expect((await publisher.publish([present({ id: 'orginv_l1', updated_at: 100 }, 30), present({ id: 'orginv_l2', updated_at: 100 }, 30)])).outcomes).toEqual(['updated', 'updated']);
    expect(await state.get('orginv_l1')).toMatchObject({ deleted: false, updatedAt: 100 });
    expect(await state.get('orginv_l2')).toMatchObject({ deleted: false, updatedAt: 100 });
    // Still: observed before the 404, or older than BAPI's last state, it stays out.
    await legacyTombstone(keys, far, FAR_FUTURE, 50);
    expect((await publisher.publish([present({ id: 'orginv_l1', updated_at: 100 }, 45), present({ id: 'orginv_l1', updated_at: 99 }, 60)])).outcomes).toEqual(['stale', 'stale']);
  });

  it("BAPI's answer under another organization wins (ids are global), and takes the invitation's expiry entry along", async () => {
    const { keys, publisher, state } = rig('moved');
    const expiresAt = Date.now() + 86_400_000;
    await publisher.publish([present({ id: 'orginv_m9', organization_id: 'org_before', updated_at: 100, status: 'pending', expires_at: expiresAt }, 10)]);
    expect(await redis.zrange(keys.expiries, '0', '-1')).toEqual(['org_before/orginv_m9']);
    // Same version, other organization: other content, observed later.
    expect((await publisher.publish([present({ id: 'orginv_m9', organization_id: 'org_after', updated_at: 100, status: 'pending', expires_at: expiresAt }, 20)])).outcomes).toEqual(['updated']);
    expect(await state.get('orginv_m9')).toMatchObject({ deleted: false, fields: { organizationId: 'org_after' } });
    expect(await redis.zrange(keys.expiries, '0', '-1')).toEqual(['org_after/orginv_m9']);
  });
});
