// Child process of bench/read.ts: runs autocannon against one URL with random invitation
// paths, so the load generator does not share the server's event loop.
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';
import { seededRandom } from '../src/simulator/random.ts';

interface Input {
  url: string;
  keysFile: string;
  token: string;
  connections: number;
  durationS: number;
}

const input = JSON.parse(process.argv[2]!) as Input;
const keys = JSON.parse(readFileSync(input.keysFile, 'utf8')) as { org: string; id: string }[];
const random = seededRandom(7);
const result = await autocannon({
  url: input.url,
  connections: input.connections,
  duration: input.durationS,
  requests: [
    {
      method: 'GET',
      headers: { authorization: `Bearer ${input.token}` },
      setupRequest(req) {
        const k = keys[Math.floor(random() * keys.length)]!;
        req.path = `/v1/organizations/${k.org}/invitations/${k.id}`;
        return req;
      },
    },
  ],
});
process.stdout.write(JSON.stringify({ rps: result['2xx'] / result.duration, p50: result.latency.p50, p99: result.latency.p99, non2xx: result.non2xx, errors: result.errors }));
