import type { InvitationJSON } from '../src/clerk/types.ts';

/** Invitation `i` of organization `o`, shaped like the fixture: the rows every benchmark works on. */
export function benchInvitation(o: number, i: number, perOrg: number, updatedAt = 1764796800000 + i): InvitationJSON {
  const org = `org_${String(o).padStart(6, '0')}bench`;
  return {
    object: 'organization_invitation', id: `orginv_${String(o * perOrg + i).padStart(8, '0')}bench`, email_address: `user${i}@org${o}.example.com`, role: 'org:member', role_name: 'Member',
    organization_id: org, inviter_id: 'user_2xQ5aB9cDdEe6Ff7Gg8Hh9Ii0Jj', public_inviter_data: null, status: 'pending',
    public_metadata: { team: 'compilers' }, private_metadata: { invitedVia: 'admin-console' },
    url: 'https://accounts.example.com/sign-up?__clerk_ticket=eyJhbGciOiJIUzI1NiJ9.e30.x',
    expires_at: 1766102400000, created_at: 1764796800000 + i, updated_at: updatedAt,
  };
}
