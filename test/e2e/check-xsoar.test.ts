import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { runCli, startDaemon } from '../helpers/daemon-process.js';
import { waitFor } from '../helpers/wait.js';
import { startStack, type Stack } from '../helpers/stack.js';

describe('check against XSOAR 8', () => {
  let stack: Stack | undefined;
  afterEach(async () => {
    await stack?.close();
    stack = undefined;
  });

  it('tests the key with /xsoar/about and GET /xsoar/user, fails on an unknown incident type and warns about an unknown playbook', async () => {
    stack = await startStack({ name: 'check8', xsoar: { apiKeyId: '17', flavour: '8', knownPlaybooks: ['Code42 Exfiltration Playbook'] } });
    const ok = await runCli(['check'], stack.env);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /^OK {3}xsoar: the key is accepted; server 8\.9\.0$/m);
    assert.match(ok.stdout, /^OK {3}xsoar user: the key acts as admin$/m);
    assert.match(ok.stdout, /^OK {3}xsoar incident type: Code42 Security Alert exists$/m);
    const paths = stack.xsoar.requests.map((r) => `${r.method} ${r.path}`);
    assert.ok(paths.includes('GET /xsoar/about') && paths.includes('GET /xsoar/user'), paths.join(', '));

    // Every create would land Unclassified: that fails the check.
    const noType = await runCli(['check'], { ...stack.env, XSOAR_INCIDENT_TYPE: 'Code42 Alert' });
    assert.equal(noType.code, 1, noType.stdout);
    assert.match(noType.stdout, /^FAIL xsoar incident type: XSOAR has no incident type "Code42 Alert" \(XSOAR_INCIDENT_TYPE\).*Unclassified/m);
    const wrongCase = await runCli(['check'], { ...stack.env, XSOAR_INCIDENT_TYPE: 'code42 security alert' });
    assert.match(wrongCase.stdout, /^FAIL xsoar incident type: .*it has "Code42 Security Alert" \(the name is case-sensitive\)/m);

    const warned = await runCli(['check'], { ...stack.env, XSOAR_PLAYBOOK_ID: 'No Such Playbook' });
    assert.equal(warned.code, 0, `warnings do not fail the check: ${warned.stdout}`);
    assert.match(warned.stdout, /^WARN xsoar playbook: XSOAR knows no playbook "No Such Playbook" \(XSOAR_PLAYBOOK_ID\)/m);

    const good = await runCli(['check'], { ...stack.env, XSOAR_PLAYBOOK_ID: 'Code42 Exfiltration Playbook' });
    assert.match(good.stdout, /^OK {3}xsoar playbook: Code42 Exfiltration Playbook exists$/m);
  });

  it('a server without GET /user is a warning when /about accepted the key', async () => {
    stack = await startStack({ name: 'check-nouser', xsoar: { noUserRoute: true } });
    const result = await runCli(['check'], stack.env);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.match(result.stdout, /^OK {3}xsoar: the key is accepted/m);
    assert.match(result.stdout, /^WARN xsoar user: this server has no \/user route \(HTTP 404\); the key is proven by \/about/m);
  });

  it('shows upstream URLs without the user and password written into them', async () => {
    stack = await startStack({ name: 'check-mask' });
    const xsoarUrl = new URL(stack.env.XSOAR_URL as string);
    xsoarUrl.username = 'svc-user';
    xsoarUrl.password = 'url-pass-42';
    const result = await runCli(['check'], { ...stack.env, XSOAR_URL: xsoarUrl.toString() });
    const effective = await runCli(['config', '--effective'], { ...stack.env, XSOAR_URL: xsoarUrl.toString() });
    for (const out of [result, effective]) {
      assert.ok(!(out.stdout + out.stderr).includes('url-pass-42') && !(out.stdout + out.stderr).includes('svc-user'), out.stdout + out.stderr);
    }
    assert.match(result.stdout, /^OK {3}config: valid; .*XSOAR http:\/\/\*\*\*:\*\*\*@/m);
  });

  it('run logs a missing incident type as an error at start', async () => {
    stack = await startStack({ name: 'run-notype' });
    const daemon = startDaemon({ ...stack.env, XSOAR_INCIDENT_TYPE: 'Code42 Alert', LOG_LEVEL: 'info' });
    try {
      const line = await waitFor(() => daemon.output().split('\n').find((l) => l.includes('"msg":"XSOAR has no incident type')), { timeoutMs: 20_000, what: 'the incident type line' });
      const parsed = JSON.parse(line) as { level: string; msg: string; incidentType: string };
      assert.equal(parsed.level, 'error');
      assert.equal(parsed.incidentType, 'Code42 Alert');
      assert.match(parsed.msg, /^XSOAR has no incident type "Code42 Alert" \(XSOAR_INCIDENT_TYPE\)/);
    } finally {
      await daemon.stop('SIGKILL');
    }
  });
});
