// Not a benchmark: CPU per webhook verification, svix's `Webhook.verify` (what the receiver
// uses) against one `node:crypto` HMAC-SHA256 over the same signed content, on a body the size
// of an invitation event. `tsx bench/verify-cost.ts`.
import { createHmac } from 'node:crypto';
import { Webhook } from 'svix';

const N = 20_000;
const key = Buffer.alloc(32, 1);
const webhook = new Webhook(`whsec_${key.toString('base64')}`);
const body = JSON.stringify({ type: 'organizationInvitation.created', object: 'event', data: { id: `orginv_2${'x'.repeat(26)}`, padding: 'y'.repeat(480) } });
const id = 'msg_verify_cost';
const at = new Date();
const headers = { 'svix-id': id, 'svix-timestamp': String(Math.floor(at.getTime() / 1000)), 'svix-signature': webhook.sign(id, at, body) };
const signed = `${id}.${headers['svix-timestamp']}.${body}`;

for (const round of [1, 2, 3]) {
  let t0 = performance.now();
  for (let i = 0; i < N; i++) webhook.verify(body, headers);
  const svixUs = ((performance.now() - t0) * 1000) / N;
  t0 = performance.now();
  for (let i = 0; i < N; i++) createHmac('sha256', key).update(signed).digest('base64');
  const cryptoUs = ((performance.now() - t0) * 1000) / N;
  console.log(`round ${round}, ${body.length}-byte body: svix verify ${svixUs.toFixed(1)} µs, node:crypto HMAC ${cryptoUs.toFixed(1)} µs`);
}
