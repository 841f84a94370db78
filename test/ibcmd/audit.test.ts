import t from 'tap';
import type * as Tap from 'tap';
import fc from 'fast-check';
import fs from 'node:fs';
import path from 'node:path';
import { isIbpError } from '../../lib/errors.js';
import { auditCommand, compileList, compilePattern, compilePolicy, matchPattern, parseCommandLine, MAX_COMMAND_LENGTH } from '../../ibcmd/audit.js';
import { checkAuthorization, ensureCredential, identifyCaller, readCredential } from '../../ibcmd/credential.js';
import { ProgramResolver, commandPath, unsafeFolder } from '../../ibcmd/resolve.js';

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

/** A folder of fake programs (0755 in a 0755 folder) and a resolver with it before the system folders. */
function fakeBin(t: Tap.Test, names: string[]): { dir: string; resolver: ProgramResolver; sandbox: string } {
  const root = t.testdir({ bin: Object.fromEntries(names.map((n) => [n, '#!/bin/sh\necho fake\n'])), sandbox: { 'a.txt': 'a' } });
  const dir = path.join(root, 'bin');
  fs.chmodSync(dir, 0o755);
  for (const n of names) fs.chmodSync(path.join(dir, n), 0o755);
  const sandbox = fs.realpathSync(path.join(root, 'sandbox'));
  return { dir, sandbox, resolver: new ProgramResolver([dir, '/usr/bin', '/bin'], sandbox) };
}

t.test('black list first, then white list; entries name the resolved program, the base name counts for the black list', async (t) => {
  const { resolver } = fakeBin(t, ['ibas.sh']);
  const policy = compilePolicy(['rm *', 'kill * 1', 'ibas.sh kill'], ['echo *', 'rm *', 'ls', 'ls *', '/bin/ls *', 'ibas.sh *', 'kill *'], resolver);
  t.same(auditCommand('echo hi there', policy).argv, ['echo', 'hi', 'there']);
  t.equal(auditCommand('echo hi', policy).program, fs.realpathSync('/bin/echo'), 'the audit says which file runs');
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
  t.same(auditCommand('/usr/bin/echo hi', policy).argv, ['/usr/bin/echo', 'hi'], 'a full path to the same file as a white-listed name runs');
  t.same(auditCommand('/bin/ls -l', policy).argv, ['/bin/ls', '-l']);
  t.equal(code(() => auditCommand('echo a;b', policy)), 'IBP_ERR_CMD_SYNTAX', 'syntax is checked before the lists');
  t.equal(code(() => auditCommand('no-such-prog-z a', policy)), 'IBP_ERR_CMD_EXEC', 'a program that resolves to nothing');
  const empty = compilePolicy([], [], resolver);
  t.equal(code(() => auditCommand('echo a', empty)), 'IBP_ERR_CMD_DENIED', 'an empty white list refuses everything');
});

t.test('a white-listed name resolved from a planted folder is refused', async (t) => {
  const { dir, resolver } = fakeBin(t, ['other']);
  const policy = compilePolicy([], ['hostname', 'echo *'], resolver);
  t.equal(auditCommand('hostname', policy).program, fs.realpathSync('/bin/hostname'));
  fs.writeFileSync(path.join(dir, 'hostname'), '#!/bin/sh\necho planted\n', { mode: 0o755 });
  t.equal(resolver.resolve('hostname'), path.join(fs.realpathSync(dir), 'hostname'), 'the name now resolves to the planted file');
  try {
    auditCommand('hostname', policy);
    t.fail('the planted hostname was allowed');
  } catch (e) {
    t.ok(isIbpError(e, 'IBP_ERR_CMD_DENIED'));
    t.match((e as Error).message, /it runs .*\/hostname, not \/.*hostname that white list entry "hostname" allows/);
  }
});

t.test('argv patterns: one pattern per argument, <sandbox-path>, a last ... repeats', async (t) => {
  const { resolver, sandbox } = fakeBin(t, []);
  fs.symlinkSync('/etc', path.join(sandbox, 'out'));
  const policy = compilePolicy(['ls -R*'], [{ program: 'ls', args: ['-l', '<sandbox-path>', '...'] }, { program: 'echo', args: ['id-???'] }, { program: 'uptime', args: [] }, { program: 'hostname' }], resolver, sandbox);
  t.same(auditCommand('ls -l a.txt', policy).argv, ['ls', '-l', 'a.txt']);
  t.same(auditCommand('ls -l a.txt sub/b.txt', policy).argv, ['ls', '-l', 'a.txt', 'sub/b.txt'], '... repeats <sandbox-path>');
  t.same(auditCommand('echo id-abc', policy).argv, ['echo', 'id-abc']);
  t.same(auditCommand('uptime', policy).argv, ['uptime']);
  t.same(auditCommand('hostname -f', policy).argv, ['hostname', '-f'], 'no args key: any arguments');
  for (const line of ['ls /root', 'ls -l /root', 'ls -l ../x', 'ls -l a.txt /root', 'ls -l out', 'ls -l out/passwd', 'ls -l', 'echo id-abcd', 'uptime -p', 'ls -R a.txt']) {
    t.equal(code(() => auditCommand(line, policy)), 'IBP_ERR_CMD_DENIED', `${line} refused`);
  }
  t.throws(() => compilePolicy([], [{ program: 'ls', args: ['...'] }], resolver), { code: 'IBP_ERR_CFG_INVALID' });
  t.throws(() => compilePolicy([], [{ program: 'l*', args: [] }], resolver), { code: 'IBP_ERR_CFG_INVALID' });
});

t.test('the command PATH: a writable folder before a system one is refused, after them left out', async (t) => {
  const root = t.testdir({ open: {}, safe: {}, sticky: { inner: {} } });
  const open = path.join(root, 'open');
  fs.chmodSync(open, 0o777);
  fs.chmodSync(path.join(root, 'safe'), 0o755);
  t.match(unsafeFolder(open), /group\/world-writable \(mode 0777\)/);
  t.equal(unsafeFolder(path.join(root, 'safe')), undefined);
  fs.chmodSync(path.join(root, 'sticky'), 0o1777);
  fs.chmodSync(path.join(root, 'sticky', 'inner'), 0o755);
  t.equal(unsafeFolder(path.join(root, 'sticky', 'inner')), undefined, 'a sticky folder above is fine');
  fs.chmodSync(path.join(root, 'sticky'), 0o777);
  t.match(unsafeFolder(path.join(root, 'sticky', 'inner')), /the folder above it/);
  const before = commandPath([open], root, '/usr/bin:/bin');
  t.equal(before.errors.length, 1);
  t.match(before.errors[0], /open is unsafe: it is group\/world-writable .* before the system folder \/usr\/bin/);
  const after = commandPath([], root, `/usr/bin:/bin:${open}`);
  t.same(after.errors, []);
  t.notOk(after.dirs.includes(open), 'left out');
  t.match(after.warnings.join('\n'), /left out/);
  t.same(commandPath([path.join(root, 'safe')], root, '/usr/bin').dirs, [path.join(root, 'safe'), '/usr/bin']);
});

t.test('callers: each credential names its caller, compared in constant time', async (t) => {
  const callers = [{ name: 'default', secret: 'a'.repeat(64) }, { name: 'ops', secret: 'b'.repeat(64) }];
  t.equal(identifyCaller(`Bearer ${'b'.repeat(64)}`, callers), 'ops');
  t.equal(identifyCaller(`Bearer ${'a'.repeat(64)}`, callers), 'default');
  t.equal(identifyCaller(`Bearer ${'c'.repeat(64)}`, callers), undefined);
  t.equal(identifyCaller(undefined, callers), undefined);
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
