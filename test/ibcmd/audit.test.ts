import t from 'tap';
import fc from 'fast-check';
import fs from 'node:fs';
import path from 'node:path';
import { isIbpError } from '../../lib/errors.js';
import { auditCommand, compileList, compilePattern, compilePolicy, matchPattern, parseCommandLine, MAX_COMMAND_LENGTH } from '../../ibcmd/audit.js';
import { checkAuthorization, ensureCredential, readCredential } from '../../ibcmd/credential.js';

const code = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (e) {
    return isIbpError(e) ? e.code : `not an IbpError: ${String(e)}`;
  }
};

t.test('a command line is split on spaces into argv', async (t) => {
  t.same(parseCommandLine('ls -l   /tmp').argv, ['ls', '-l', '/tmp']);
  t.equal(parseCommandLine('  ls   -l  ').line, 'ls -l');
  t.same(parseCommandLine('ibas.sh restart_graceful').argv, ['ibas.sh', 'restart_graceful']);
  t.same(parseCommandLine('tar xzf ibp-ts-0.1.0-bin.tar.gz').argv, ['tar', 'xzf', 'ibp-ts-0.1.0-bin.tar.gz'], 'dots, dashes and digits are plain');
  t.equal(code(() => parseCommandLine('')), 'IBP_ERR_CMD_SYNTAX');
  t.equal(code(() => parseCommandLine('    ')), 'IBP_ERR_CMD_SYNTAX');
  t.equal(code(() => parseCommandLine('x'.repeat(MAX_COMMAND_LENGTH + 1))), 'IBP_ERR_CMD_SYNTAX');
  t.equal(code(() => parseCommandLine(42 as unknown as string)), 'IBP_ERR_CMD_SYNTAX');
});

t.test('shell separators and metacharacters are refused, each with its reason', async (t) => {
  const cases: [string, RegExp][] = [
    ['echo a; rm -rf /', /separator/],
    ['echo a | sh', /separator/],
    ['echo a && reboot', /separator/],
    ['sleep 100 &', /separator/],
    ['echo $HOME', /substitution/],
    ['echo `id`', /substitution/],
    ['echo $(id)', /substitution/],
    ['echo (a)', /substitution/],
    ['echo a > /etc/passwd', /redirection/],
    ['cat < /etc/shadow', /redirection/],
    ['echo a\nreboot', /newline/],
    ['echo a\rreboot', /newline/],
    ['echo a\tb', /control/],
    ['echo a\x00b', /control/],
    ['echo "a b"', /quote/],
    ["echo 'a'", /quote/],
    ['echo a\\ b', /backslash/],
    ['ls *.log', /glob/],
    ['ls ?', /glob/],
    ['ls [ab]', /glob/],
    ['echo {a,b}', /glob/],
    ['ls ~', /glob/],
    ['echo !!', /glob/],
    ['echo a # comment', /#/],
  ];
  for (const [line, why] of cases) {
    try {
      parseCommandLine(line);
      t.fail(`${JSON.stringify(line)} was accepted`);
    } catch (e) {
      t.ok(isIbpError(e, 'IBP_ERR_CMD_SYNTAX'), `${JSON.stringify(line)} → IBP_ERR_CMD_SYNTAX`);
      t.match((e as Error).message, why, `${JSON.stringify(line)}: ${(e as Error).message}`);
    }
  }
});

t.test('property: any line holding a refused character is refused; safe tokens round-trip', async (t) => {
  const refused = [...';|&$`><()\'"\\*?[]{}~!#\n\r\t\x00'];
  fc.assert(fc.property(fc.string(), fc.constantFrom(...refused), fc.string(), (a, bad, b) => {
    return code(() => parseCommandLine(`${a}${bad}${b}`)) === 'IBP_ERR_CMD_SYNTAX';
  }), { numRuns: 500 });
  const safeChar = fc.constantFrom(...'abcXYZ019_-./:=,+@%^'.split(''));
  const token = fc.string({ unit: safeChar, minLength: 1, maxLength: 12 });
  fc.assert(fc.property(fc.array(token, { minLength: 1, maxLength: 8 }), (tokens) => {
    const r = parseCommandLine(tokens.join('  '));
    return JSON.stringify(r.argv) === JSON.stringify(tokens) && r.line === tokens.join(' ');
  }), { numRuns: 500 });
});

t.test('patterns: * is any run (spaces too), ? one character, everything else literal, whole line', async (t) => {
  const m = (p: string, line: string): boolean => matchPattern(compilePattern(p), line);
  t.ok(m('ibas.sh *', 'ibas.sh status'));
  t.ok(m('ibas.sh *', 'ibas.sh cmd a b c'), '* crosses spaces');
  t.notOk(m('ibas.sh *', 'ibas.sh'), 'the space before * is literal');
  t.notOk(m('ibas.sh *', 'xibas.sh status'), 'anchored at the start');
  t.notOk(m('ls', 'ls -l'), 'anchored at the end');
  t.ok(m('ls ?', 'ls a'));
  t.notOk(m('ls ?', 'ls ab'));
  t.ok(m('ls  -l', 'ls -l'), 'runs of spaces in a pattern count as one');
  t.notOk(m('a.c', 'abc'), '. is literal');
  t.ok(m('a.c', 'a.c'));
  t.notOk(m('a+', 'aa'), '+ is literal');
  t.ok(m('(x)|[y]{1}^$\\/', '(x)|[y]{1}^$\\/'), 'regex syntax is literal');
  t.ok(m('*', 'anything at all'));
  t.throws(() => compileList(['ok', '  '], 'white_list'), { code: 'IBP_ERR_CFG_INVALID' }, 'an empty pattern is a config error');
});

t.test('black list first, then white list; the program base name is checked too', async (t) => {
  const policy = compilePolicy(['rm *', 'kill * 1', 'ibas.sh kill'], ['echo *', 'rm *', 'ls', 'ls *', '/bin/ls *', 'ibas.sh *', 'kill *']);
  t.same(auditCommand('echo hi there', policy).argv, ['echo', 'hi', 'there']);
  t.same(auditCommand('ibas.sh status', policy).argv, ['ibas.sh', 'status']);
  const denied = (line: string, why: RegExp): void => {
    try {
      auditCommand(line, policy);
      t.fail(`${line} was allowed`);
    } catch (e) {
      t.ok(isIbpError(e, 'IBP_ERR_CMD_DENIED'), `${line} → IBP_ERR_CMD_DENIED`);
      t.match((e as Error).message, why, (e as Error).message);
    }
  };
  denied('rm -rf /tmp/x', /black list pattern "rm \*"/);
  denied('/bin/rm -rf /tmp/x', /"rm -rf \/tmp\/x" matches black list pattern "rm \*"/);
  denied('kill -9 1', /black list/);
  denied('ibas.sh kill', /black list pattern "ibas.sh kill"/);
  denied('cat /etc/passwd', /matches no white list pattern/);
  denied('/usr/bin/echo hi', /matches no white list pattern/);
  t.same(auditCommand('/bin/ls -l', policy).argv, ['/bin/ls', '-l'], 'a full path is allowed only when the white list names it');
  t.equal(code(() => auditCommand('echo a;b', policy)), 'IBP_ERR_CMD_SYNTAX', 'syntax is checked before the lists');
  const empty = compilePolicy([], []);
  t.equal(code(() => auditCommand('echo a', empty)), 'IBP_ERR_CMD_DENIED', 'an empty white list refuses everything');
});

t.test('credential: created 0600 once, read strictly, compared in constant time', async (t) => {
  const dir = t.testdir();
  const file = path.join(dir, 'keys', 'ibcmd.credential');
  t.ok(ensureCredential(file), 'created');
  t.notOk(ensureCredential(file), 'kept the second time');
  t.equal(fs.statSync(file).mode & 0o777, 0o600);
  const secret = readCredential(file);
  t.match(secret, /^[0-9a-f]{64}$/);
  t.ok(checkAuthorization(`Bearer ${secret}`, secret));
  t.notOk(checkAuthorization(`Bearer ${secret}x`, secret));
  t.notOk(checkAuthorization(secret, secret), 'the scheme is required');
  t.notOk(checkAuthorization(undefined, secret));
  t.notOk(checkAuthorization('Bearer ', secret));
  fs.chmodSync(file, 0o644);
  t.throws(() => readCredential(file), { code: 'IBP_ERR_CMD_CREDENTIAL', message: /chmod 600/ }, 'the agent refuses a file others can read');
  t.equal(readCredential(file, false), secret, 'a client reading a copy does not insist');
  const link = path.join(dir, 'link.credential');
  fs.symlinkSync(file, link);
  t.throws(() => readCredential(link, false), { code: 'IBP_ERR_CMD_CREDENTIAL', message: /symbolic link/ });
  const short = path.join(dir, 'short.credential');
  fs.writeFileSync(short, 'abc\n', { mode: 0o600 });
  t.throws(() => readCredential(short), { code: 'IBP_ERR_CMD_CREDENTIAL', message: /at least 16/ });
  t.throws(() => readCredential(path.join(dir, 'none')), { code: 'IBP_ERR_CMD_CREDENTIAL', message: /ibcmd -a init/ });
});
