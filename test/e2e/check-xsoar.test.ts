import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { runCli } from '../helpers/daemon-process.js';
import { startStack, type Stack } from '../helpers/stack.js';

describe('check against XSOAR 8', () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  it('tests the key with /xsoar/about and GET /xsoar/user, and warns about an unknown incident type or playbook', async () => {
    stack = await startStack({ name: 'check8', xsoar: { apiKeyId: '17', flavour: '8', knownPlaybooks: ['Code42 Exfiltration Playbook'] } });
    const ok = await runCli(['check'], stack.env);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /^OK {3}xsoar: the key is accepted; server 8\.9\.0$/m);
    assert.match(ok.stdout, /^OK {3}xsoar user: the key acts as admin$/m);
    assert.match(ok.stdout, /^OK {3}xsoar incident type: Code42 Security Alert exists$/m);
    const paths = stack.xsoar.requests.map((r) => `${r.method} ${r.path}`);
    assert.ok(paths.includes('GET /xsoar/about') && paths.includes('GET /xsoar/user'), paths.join(', '));

    const warned = await runCli(['check'], { ...stack.env, XSOAR_INCIDENT_TYPE: 'Code42 Alert', XSOAR_PLAYBOOK_ID: 'No Such Playbook' });
    assert.equal(warned.code, 0, 'warnings do not fail the check');
    assert.match(warned.stdout, /^WARN xsoar incident type: XSOAR has no incident type "Code42 Alert" \(XSOAR_INCIDENT_TYPE\)/m);
    assert.match(warned.stdout, /^WARN xsoar playbook: XSOAR knows no playbook "No Such Playbook" \(XSOAR_PLAYBOOK_ID\)/m);

    const good = await runCli(['check'], { ...stack.env, XSOAR_PLAYBOOK_ID: 'Code42 Exfiltration Playbook' });
    assert.match(good.stdout, /^OK {3}xsoar playbook: Code42 Exfiltration Playbook exists$/m);
  });
});
