// A keep-alive HTTP/1.1 load generator on raw sockets, for the ingest benchmark. autocannon
// rebuilds a request whenever its body changes, CPU taken from the server being measured on
// a small machine (BENCHMARKS.md, ingest method). This one
// writes pre-built request bytes and reads only the status line and content-length, so the
// CPU goes to the server. One request in flight per connection, as autocannon's pipelining 1.
import { connect, type Socket } from 'node:net';

export interface RawLoadOptions {
  url: string;
  connections: number;
  /** Run before measuring (JIT, pools); its answers are not counted. */
  warmupS: number;
  durationS: number;
}

export interface RawLoadResult {
  /** Answers to requests sent during the measured run. */
  ok2xx: number;
  non2xx: number;
  errors: number;
  /** Requests still unanswered 10 s after the run ended. */
  timeouts: number;
  durationS: number;
  /** Latency of every measured 2xx, ms, sorted. */
  latenciesMs: number[];
  /** Requests written, warm-up included. */
  sent: number;
}

/** `POST <path>` with these headers and body, as the bytes a client writes. */
export function requestBytes(url: string, headers: Record<string, string>, body: Buffer): Buffer {
  const u = new URL(url);
  const lines = [`POST ${u.pathname} HTTP/1.1`, `host: ${u.host}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`), `content-length: ${body.length}`];
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), body]);
}

const CRLF2 = Buffer.from('\r\n\r\n');

/** Sends `requests` in turn (wrapping around) over `connections` sockets for warm-up + duration. */
export async function runRawLoad(requests: readonly Buffer[], o: RawLoadOptions): Promise<RawLoadResult> {
  const { hostname, port } = new URL(o.url);
  let next = 0;
  let phase: 'warmup' | 'measure' | 'done' = 'warmup';
  const r: RawLoadResult = { ok2xx: 0, non2xx: 0, errors: 0, timeouts: 0, durationS: o.durationS, latenciesMs: [], sent: 0 };
  const sockets = new Set<Socket>();

  const connection = (): Promise<void> =>
    new Promise((resolve) => {
      const sock = connect(Number(port), hostname);
      sockets.add(sock);
      sock.setNoDelay(true);
      let buf: Buffer = Buffer.alloc(0);
      let sentAt = 0;
      let measured = false;
      let inFlight = false;
      const finish = () => {
        sockets.delete(sock);
        sock.destroy();
        resolve();
      };
      const sendNext = () => {
        if (phase === 'done') return finish();
        measured = phase === 'measure';
        inFlight = true;
        sentAt = performance.now();
        r.sent++;
        sock.write(requests[next++ % requests.length]!);
      };
      sock.on('connect', sendNext);
      sock.on('data', (chunk: Buffer) => {
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        const end = buf.indexOf(CRLF2);
        if (end < 0) return;
        const head = buf.toString('latin1', 0, end);
        const length = /\r\ncontent-length: *(\d+)/i.exec(head);
        if (!length) {
          r.errors++;
          return finish();
        }
        if (buf.length < end + 4 + Number(length[1])) return;
        buf = Buffer.alloc(0);
        inFlight = false;
        if (measured) {
          const status = Number(head.slice(9, 12));
          if (status >= 200 && status < 300) {
            r.ok2xx++;
            r.latenciesMs.push(performance.now() - sentAt);
          } else r.non2xx++;
        }
        sendNext();
      });
      sock.on('error', () => {
        if (measured) r.errors++;
      });
      sock.on('close', () => {
        if (inFlight && phase === 'done' && measured) r.timeouts++;
        else if (inFlight && measured) r.errors++;
        finish();
      });
    });

  const all = Array.from({ length: o.connections }, connection);
  await new Promise((res) => setTimeout(res, o.warmupS * 1000));
  phase = 'measure';
  await new Promise((res) => setTimeout(res, o.durationS * 1000));
  phase = 'done';
  const stop = setTimeout(() => {
    for (const s of sockets) s.destroy();
  }, 10_000);
  await Promise.all(all);
  clearTimeout(stop);
  r.latenciesMs.sort((a, b) => a - b);
  return r;
}
