/**
 * Anything shaped like an e-mail address, with or without a top-level domain: characters
 * that do not delimit a token (space, quotes, brackets, commas, colons) on both sides of an
 * `@`. The part before it stops at `=`, so that `user=ada@example.com` in a `key=value` line
 * keeps its key, and at `:` or `]`, so that `scheme://user:[redacted]@host` keeps its host.
 */
const EMAIL_ADDRESS = /[^\s@"'<>()[\]{},;:=]+@[^\s"'<>()[\]{},;:]+/g;

/** Replaces every e-mail address in `text` by `mark`. */
export function redactEmailAddresses(text: string, mark: string): string {
  return text.replace(EMAIL_ADDRESS, mark);
}
