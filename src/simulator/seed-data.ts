/**
 * Plausible names for seeded organizations and invitees. Everything is drawn from the PRNG
 * passed in, so one seed always produces the same instance.
 */

const ADJECTIVES = ['Analytical', 'Brisk', 'Cobalt', 'Distant', 'Electric', 'Frugal', 'Granite', 'Harbor', 'Iron', 'Jade', 'Kinetic', 'Lunar', 'Modest', 'Northern', 'Orbital', 'Prime'];
const NOUNS = ['Engines', 'Labs', 'Works', 'Systems', 'Foundry', 'Partners', 'Collective', 'Studio', 'Logistics', 'Robotics', 'Analytics', 'Bakery', 'Clinic', 'Press', 'Orchards', 'Outfitters'];
const FIRST = ['ada', 'alan', 'barbara', 'claude', 'donald', 'edsger', 'frances', 'grace', 'hedy', 'ivan', 'john', 'katherine', 'leslie', 'margaret', 'niklaus', 'radia', 'shafi', 'tim'];
const LAST = ['lovelace', 'turing', 'liskov', 'shannon', 'knuth', 'dijkstra', 'allen', 'hopper', 'lamarr', 'sutherland', 'backus', 'johnson', 'lamport', 'hamilton', 'wirth', 'perlman', 'goldwasser', 'berners-lee'];

export const pick = <T>(items: readonly T[], random: () => number): T => items[Math.floor(random() * items.length)]!;

export function organizationName(random: () => number): string {
  return `${pick(ADJECTIVES, random)} ${pick(NOUNS, random)}`;
}

export interface Person {
  firstName: string;
  lastName: string;
  email: string;
}

const capitalize = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** `serial` keeps addresses unique across a seed without a lookup. */
export function person(random: () => number, serial: number): Person {
  const first = pick(FIRST, random);
  const last = pick(LAST, random);
  return { firstName: capitalize(first), lastName: capitalize(last), email: `${first}.${last}+${serial}@example.com` };
}
