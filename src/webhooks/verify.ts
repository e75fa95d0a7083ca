import { Webhook, WebhookVerificationError } from 'svix';

/** Why a webhook request was refused; the route answers `status` and enqueues nothing. */
export class WebhookRejection extends Error {
  override name = 'WebhookRejection';
  constructor(
    readonly status: 400,
    readonly reason: 'missing_signature_headers' | 'bad_signature' | 'malformed_body',
    message: string,
  ) {
    super(message);
  }
}

const SVIX_HEADERS = ['svix-id', 'svix-timestamp', 'svix-signature'] as const;

// Stateless between calls (no `stream` option), so one serves every request.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export interface ClerkEventEnvelope {
  type: string;
  data: unknown;
  [k: string]: unknown;
}

/**
 * Checks the Svix signature over the exact bytes received (including the 5-minute timestamp
 * tolerance), and only then parses them. Nothing unsigned is ever parsed.
 */
export class WebhookVerifier {
  private readonly webhook: Webhook;

  constructor(signingSecret: string) {
    this.webhook = new Webhook(signingSecret);
  }

  verify(rawBody: Buffer, headers: Record<string, string | string[] | undefined>): ClerkEventEnvelope {
    const svixHeaders: Record<string, string> = {};
    for (const name of SVIX_HEADERS) {
      const value = headers[name];
      if (typeof value !== 'string' || value.length === 0 || value.length > 4096) {
        throw new WebhookRejection(400, 'missing_signature_headers', `missing or invalid ${name} header`);
      }
      svixHeaders[name] = value;
    }
    try {
      this.webhook.verify(rawBody, svixHeaders);
    } catch (err) {
      if (err instanceof WebhookVerificationError) {
        throw new WebhookRejection(400, 'bad_signature', `signature verification failed: ${err.message}`);
      }
      throw new WebhookRejection(400, 'bad_signature', 'signature verification failed');
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(strictUtf8.decode(rawBody));
    } catch {
      throw new WebhookRejection(400, 'malformed_body', 'signed body is not UTF-8 JSON');
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed) || typeof (parsed as { type?: unknown }).type !== 'string') {
      throw new WebhookRejection(400, 'malformed_body', 'signed body is not a Clerk event (no "type")');
    }
    return parsed as ClerkEventEnvelope;
  }
}
