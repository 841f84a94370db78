/**
 * `ibpgen new-app NAME [--lang ts|c] [--dir DIR] [--ibp-ts SPEC]` (issue 15): a buildable app with
 * its own test, in DIR/NAME (default ./NAME):
 *
 *   --lang ts  src/NAME.mts (the app, typed against `ibp-ts/app`), tsconfig.json, package.json
 *              (`npm run build` → dist/NAME.mjs, the package to deploy; `npm test` builds and runs
 *              test/NAME.test.mjs with node:test and the harness of `ibp-ts/testing`)
 *   --lang c   NAME.c (against lib/native/ibp_app.h of the installed ibp-ts), Makefile (`make` →
 *              NAME.so; `make test` runs the same kind of test), package.json for the harness
 *
 * SPEC is the ibp-ts dependency written into package.json (default ^<this version>; a path such as
 * file:../ibp-ts for a local checkout). Nothing is installed: the command prints the next steps.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { badArg } from '../lib/cli.js';
import { PROJECT_ROOT } from '../lib/native/built-files.js';

export const LANGS = ['ts', 'c'] as const;
export type Lang = (typeof LANGS)[number];

/** An app name: a C identifier and a plain file name (it names the package, the .so/.mjs and the app code). */
export const APP_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

export interface NewAppOptions {
  name: string;
  lang: Lang;
  /** Parent folder (default the current one). */
  dir?: string;
  /** The ibp-ts dependency spec. */
  ibpTs?: string;
}

/**
 * The ibp-ts dependency a new app gets by default: `^<version>` when this ibp-ts is a published
 * package, else (a private package: a checkout, which no registry serves) `file:` this checkout,
 * so that `npm install` in the new app works as printed.
 */
export function defaultIbpTsSpec(): string {
  const pkg = JSON.parse(fs.readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string; private?: boolean };
  return pkg.private === true ? `file:${PROJECT_ROOT}` : `^${pkg.version}`;
}

/** The files of a new app, path → content. */
export function appFiles(o: NewAppOptions): Record<string, string> {
  const n = o.name;
  const spec = o.ibpTs ?? defaultIbpTsSpec();
  const gitignore = 'node_modules/\ndist/\n*.so\n';
  if (o.lang === 'ts') {
    return {
      'package.json': JSON.stringify({
        name: n.toLowerCase().replace(/_/g, '-'),
        version: '0.1.0',
        private: true,
        description: `IBP-TS app ${n} (TypeScript): deploy dist/${n}.mjs`,
        type: 'module',
        scripts: { build: 'tsc -p tsconfig.json', test: 'npm run build && node --test test/' },
        devDependencies: { 'ibp-ts': spec, typescript: '~5.9', '@types/node': '^20.19.0' },
      }, null, 2) + '\n',
      'tsconfig.json': JSON.stringify({
        compilerOptions: {
          target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022'], types: ['node'],
          strict: true, skipLibCheck: true, declaration: true, rootDir: 'src', outDir: 'dist',
        },
        include: ['src/*.mts'],
      }, null, 2) + '\n',
      [`src/${n}.mts`]: `/**
 * ${n}: an IBP-TS app in TypeScript. \`npm run build\` compiles it to dist/${n}.mjs, the package
 * you deploy (\`ibms -a add_app --app ${n} --bin ${n}.mjs …\`, see docs/apps.md of ibp-ts).
 *
 * The request is a name; the answer is "hello, <name>" (and the greeting of this node's KV
 * "greeting" when it is set). An empty request is an app error (rc 1).
 */
import type { AppContext } from 'ibp-ts/app';

/** The app ABI this module was written for (a server speaking another one refuses it). */
export const abiVersion = 1;

let calls = 0;

/** soinit: once when a worker loads this version. Non-zero refuses the load. */
export function init(ctx: AppContext): number {
  ctx.log.info(\`${n} loaded , node[\${ctx.thisNode}]\`);
  return 0;
}

/** somain: one transaction. Return 0 for success, another integer for an app error. */
export function main(ctx: AppContext): number {
  const name = ctx.request.toString('utf8').trim();
  if (name === '') {
    ctx.write('give a name');
    return 1;
  }
  calls++;
  ctx.write(\`\${ctx.kv('greeting') ?? 'hello'}, \${name}\`);
  ctx.log.debug(\`${n} answered , journal[\${ctx.journal}] calls[\${calls}]\`);
  return 0;
}

/** soclean: before a worker unloads this version (updated file, LRU, worker exit). */
export function clean(ctx: AppContext): void {
  ctx.log.info(\`${n} unloaded after \${calls} calls\`);
}
`,
      [`test/${n}.test.mjs`]: testFile(n, `../dist/${n}.mjs`),
      '.gitignore': gitignore,
      'README.md': readme(n, 'ts'),
    };
  }
  return {
    'package.json': JSON.stringify({
      name: n.toLowerCase().replace(/_/g, '-'),
      version: '0.1.0',
      private: true,
      description: `IBP-TS app ${n} (C): deploy ${n}.so`,
      type: 'module',
      scripts: { build: 'make', test: 'make test' },
      devDependencies: { 'ibp-ts': spec },
    }, null, 2) + '\n',
    Makefile: `# ${n}.so, an IBP-TS app in C. \`make\` builds it, \`make test\` runs test/${n}.test.mjs.
# IBP_TS is the ibp-ts package (its lib/native/ibp_app.h); by default the one node resolves here.
IBP_TS ?= $(shell node -p "require('path').dirname(require.resolve('ibp-ts/package.json'))")
CC ?= gcc
CFLAGS ?= -O2 -g -fPIC -fno-omit-frame-pointer -Wall -Wextra -Werror -Wno-unused-parameter

all: ${n}.so

${n}.so: ${n}.c $(IBP_TS)/lib/native/ibp_app.h
\t$(CC) $(CFLAGS) -shared -I$(IBP_TS)/lib/native -o $@ ${n}.c

test: ${n}.so
\tnode --test test/

clean:
\trm -f ${n}.so

.PHONY: all test clean
`,
    [`${n}.c`]: `/*
 * ${n}.so: an IBP-TS app in C (lib/native/ibp_app.h of ibp-ts). \`make\` builds it; deploy it with
 * \`ibms -a add_app --app ${n} --bin ${n}.so …\` (docs/apps.md of ibp-ts).
 *
 * The request is a name; the answer is "hello, <name>" (or the greeting of this node's KV
 * "greeting" when it is set). An empty request is an app error (rc 1).
 */
#include "ibp_app.h"

IBP_APP_DECLARE();

static unsigned long calls;

int soinit(ibp_app_ctx *ctx) {
    ibp_log(ctx, IBP_APP_LOG_INFO, "${n} loaded , node[%s]", ctx->this_node);
    return IBP_APP_OK;
}

int somain(ibp_app_ctx *ctx) {
    if (ctx->req_len == 0) {
        ibp_rsp_puts(ctx, "give a name");
        return 1;
    }
    const char *greeting = ctx->kv_get(ctx, "greeting");
    calls++;
    if (ibp_rsp_printf(ctx, "%s, %.*s", greeting ? greeting : "hello", (int)ctx->req_len, (const char *)ctx->req) != 0) return 2;
    ibp_log(ctx, IBP_APP_LOG_DEBUG, "${n} answered , journal[%s] calls[%lu]", ctx->journal, calls);
    return IBP_APP_OK;
}

int soclean(ibp_app_ctx *ctx) {
    ibp_log(ctx, IBP_APP_LOG_INFO, "${n} unloaded after %lu calls", calls);
    return IBP_APP_OK;
}
`,
    [`test/${n}.test.mjs`]: testFile(n, `../${n}.so`),
    '.gitignore': gitignore,
    'README.md': readme(n, 'c'),
  };
}

function testFile(n: string, rel: string): string {
  return `// The app's own test: it runs the built app with the harness of ibp-ts/testing (no cluster).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { runApp } from 'ibp-ts/testing';

const APP = fileURLToPath(new URL('${rel}', import.meta.url));

test('${n} greets', async () => {
  const r = await runApp(APP, { request: 'world' });
  assert.equal(r.rc, 0);
  assert.equal(r.response.toString(), 'hello, world');
});

test('${n} uses the greeting of the node KV', async () => {
  const r = await runApp(APP, { request: 'world', kv: { greeting: 'bonjour' } });
  assert.equal(r.response.toString(), 'bonjour, world');
});

test('${n} refuses an empty request with rc 1', async () => {
  const r = await runApp(APP, { request: '' });
  assert.equal(r.appRc, 1);
  assert.equal(r.response.toString(), 'give a name');
});
`;
}

function readme(n: string, lang: Lang): string {
  const file = lang === 'ts' ? `dist/${n}.mjs` : `${n}.so`;
  const build = lang === 'ts' ? 'npm run build' : 'make';
  const test = lang === 'ts' ? 'npm test' : 'make test';
  return `# ${n}

An IBP-TS app in ${lang === 'ts' ? 'TypeScript' : 'C'}, made by \`ibpgen new-app ${n} --lang ${lang}\`.

    npm install        # ibp-ts (the API, the harness)${lang === 'ts' ? ' and typescript' : ''}
    ${build.padEnd(18)} # → ${file}
    ${test.padEnd(18)} # its test, in process (ibp-ts/testing), no cluster

Serve it alone for debugging (any app code, no registry):

    npx ibas -a init --ip 127.0.0.1 --port 9100 && npx ibas -a start --foreground --app ${file}
    curl -s --data-binary world http://127.0.0.1:9100/ibp/${n}

Deploy: copy ${file} into the registry's so/ folder and
\`ibms -a add_app --app ${n} --bin ${path.basename(file)} --server-node NODE --timeout 5\`; an updated file
is hot-updated on every node (the next call runs it). See docs/apps.md of ibp-ts.
`;
}

/** Write the app; returns the folder. Refuses a bad name or a folder that is not empty. */
export function newApp(o: NewAppOptions): string {
  if (!APP_NAME_RE.test(o.name)) throw badArg('NAME', `"${o.name}" is not an app name (a letter or _, then letters, digits, _; at most 64)`);
  if (!LANGS.includes(o.lang)) throw badArg('--lang', `"${o.lang}" is not one of ${LANGS.join(', ')}`);
  const dir = path.resolve(o.dir ?? '.', o.name);
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) throw badArg('NAME', `${dir} exists and is not empty`);
  for (const [rel, text] of Object.entries(appFiles(o))) {
    const f = path.join(dir, rel);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, text);
  }
  return dir;
}

export function registerNewApp(program: Command): void {
  program
    .command('new-app')
    .description('create a buildable app with its own test (TypeScript: npm run build / npm test; C: make / make test)')
    .argument('<name>', 'app name (also the app code and the package file name)')
    .addOption(new Option('--lang <lang>', 'language').choices(LANGS).default('ts'))
    .option('--dir <dir>', 'parent folder of the new app', '.')
    .option('--ibp-ts <spec>', 'the ibp-ts dependency in package.json (default: file:<this checkout>, since ibp-ts is not on a registry; ^<version> once it is published)')
    .action((name: string, o: { lang: Lang; dir: string; ibpTs?: string }) => {
      const dir = newApp({ name, lang: o.lang, dir: o.dir, ibpTs: o.ibpTs });
      const steps = o.lang === 'ts' ? 'npm install && npm run build && npm test' : 'npm install && make && make test';
      process.stdout.write(`new-app ok , app[${name}] lang[${o.lang}] dir[${dir}]\nnext: cd ${path.relative(process.cwd(), dir) || '.'} && ${steps}\n`);
    });
}
