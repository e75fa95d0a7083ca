import http from 'node:http';
import https from 'node:https';

/** What BapiClient needs of an HTTP answer. */
export interface BapiResponse {
  status: number;
  header(name: string): string | undefined;
  body: Buffer;
}

export type BapiTransport = (url: URL, headers: Record<string, string>, timeoutMs: number) => Promise<BapiResponse>;

/** The request (connect, headers and body) took longer than its limit. */
export class TransportTimeoutError extends Error {
  override name = 'TimeoutError';
}

/**
 * GET over `node:http`/`node:https` with keep-alive agents. Global `fetch` cost about twice
 * the CPU per call here (WHATWG streams, an AbortSignal per request), and the worker is
 * CPU-bound on these calls (see BENCHMARKS.md). Errors never quote the request headers.
 */
export function keepAliveTransport({ maxSockets = 64 }: { maxSockets?: number } = {}): BapiTransport {
  const agents = {
    'http:': new http.Agent({ keepAlive: true, maxSockets }),
    'https:': new https.Agent({ keepAlive: true, maxSockets }),
  };
  return (url, headers, timeoutMs) =>
    new Promise<BapiResponse>((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        fn();
      };
      const secure = url.protocol === 'https:';
      const req = (secure ? https : http).request(url, { method: 'GET', headers, agent: agents[secure ? 'https:' : 'http:'] }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          settle(() =>
            resolve({
              status: res.statusCode ?? 0,
              header: (name) => {
                const v = res.headers[name.toLowerCase()];
                return Array.isArray(v) ? v.join(', ') : v;
              },
              body: Buffer.concat(chunks),
            }),
          ),
        );
        res.on('error', (err) => settle(() => reject(err)));
        res.on('close', () => settle(() => reject(Object.assign(new Error('connection closed mid-answer'), { code: 'ECONNRESET' }))));
      });
      const timer = setTimeout(() => req.destroy(new TransportTimeoutError(`no complete answer within ${timeoutMs} ms`)), timeoutMs);
      req.on('error', (err) => settle(() => reject(err)));
      req.end();
    });
}
