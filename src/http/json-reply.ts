import type { FastifyReply } from 'fastify';

/** The exact header BAPI sends; `@clerk/backend` parses a body as JSON only when it matches byte for byte. */
export const JSON_CONTENT_TYPE = 'application/json';

/**
 * Sends `body` (JSON text, or a value to stringify) with `content-type: application/json`
 * and nothing appended. Fastify adds `; charset=utf-8` to any JSON-ish content type when the
 * payload is a string or an object, but leaves the header alone for a Buffer, so the text
 * goes out as a Buffer of its exact UTF-8 bytes.
 */
export function sendJson(reply: FastifyReply, status: number, body: string | object): FastifyReply {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return reply.code(status).header('content-type', JSON_CONTENT_TYPE).send(Buffer.from(text, 'utf8'));
}
