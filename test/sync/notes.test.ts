/** The words the sync writes: Code42 text is escaped in markdown, plain words stay as they are. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { closedInIncydrNotes, escapeMarkdown, updateNote } from '../../src/sync/notes.js';

describe('sync notes', () => {
  it('escapes Code42 text in markdown and leaves plain words alone', () => {
    assert.equal(escapeMarkdown('[click](javascript:alert(1))'), '\\[click\\](javascript:alert(1))');
    assert.equal(escapeMarkdown('<img src=x onerror=alert(1)>'), '\\<img src=x onerror=alert(1)\\>');
    assert.equal(escapeMarkdown('# Heading\n**bold** | cell'), '\\# Heading \\*\\*bold\\*\\* \\| cell');
    assert.equal(escapeMarkdown('_emphasis_'), '\\_emphasis\\_');
    for (const plain of ['OPEN_NEW_DATA', 'carol@example.com', 'first_last@example.com', 'USB exfiltration']) assert.equal(escapeMarkdown(plain), plain);
  });

  it('escapes rule names and users in war-room notes and close notes', () => {
    const note = updateNote('s-1', 3, { newEvents: 1, newRules: ['<b>Rule</b> [x](y)'], state: 'CLOSED_FP', closedBy: { user: 'eve*@x.com', at: 0 } }, false);
    assert.match(note, /new rule: \\<b\\>Rule\\<\/b\\> \\\[x\\\]\(y\); state CLOSED_FP \(closed in Incydr by eve\\\*@x\.com at 1970/);
    assert.equal(closedInIncydrNotes('CLOSED', '[me](http://x)', 0), 'Closed in Code42 Incydr by \\[me\\](http://x) at 1970-01-01T00:00:00.000Z (session state CLOSED).');
  });
});
