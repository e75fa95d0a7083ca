// The BAPI simulator in a process of its own, standing in for Clerk: its CPU time is Clerk's,
// not the worker's, so it must not share the service's event loop. Reads SimChildInput as JSON
// on stdin (it carries the secret key), prepares the invitations, prints one JSON line
// (SimChildOutput) and serves until SIGTERM.
import { startSimulator } from '../src/simulator/index.ts';

export interface SimChildInput {
  secretKey: string;
  signingSecret: string;
  /** `seed`: pre-existing invitations (store.seed); `create`: new pending ones (store.createInvitation). */
  plan: { kind: 'seed'; organizations: number; invitationsPerOrganization: number } | { kind: 'create'; organizations: number; invitations: number } | { kind: 'none' };
  /** Clerk's limits and latency to imitate. @defaultValue no rate limit, no added latency */
  limits?: { rateLimit: number; rateWindowMs: number; latencyMs: number };
  /** Leave SimChildOutput.invitations empty (a large seed need not cross the pipe). */
  omitInvitations?: boolean;
}

export interface SimChildOutput {
  url: string;
  /** Each invitation's JSON, as a webhook's `data` would carry it. */
  invitations: Record<string, unknown>[];
}

let raw = '';
for await (const chunk of process.stdin) raw += String(chunk);
const input = JSON.parse(raw) as SimChildInput;
const limits = input.limits;
const sim = await startSimulator({
  secretKey: input.secretKey,
  signingSecret: input.signingSecret,
  rateLimit: limits?.rateLimit ?? 0,
  ...(limits ? { rateWindowMs: limits.rateWindowMs, faults: { latencyMs: limits.latencyMs } } : {}),
});
const { store } = sim;
let invitations: Record<string, unknown>[] = [];
const plan = input.plan;
if (plan.kind === 'seed') {
  const { invitationIds } = store.seed(plan);
  if (!input.omitInvitations) invitations = invitationIds.map((id) => store.getInvitation(id) as unknown as Record<string, unknown>);
} else if (plan.kind === 'create') {
  // The simulator has no webhook endpoint here, so creating sends nothing: the load client
  // posts each invitation's signed webhook itself, at the pace the benchmark wants.
  const orgs = Array.from({ length: plan.organizations }, () => store.createOrganization());
  invitations = Array.from(
    { length: plan.invitations },
    (_, i) => store.createInvitation(orgs[i % orgs.length]!.id, { emailAddress: `bench${i}@example.com` }) as unknown as Record<string, unknown>,
  );
}
const out: SimChildOutput = { url: sim.url, invitations };
process.stdout.write(`${JSON.stringify(out)}\n`);
process.once('SIGTERM', () => {
  void sim.close().finally(() => process.exit(0));
});
