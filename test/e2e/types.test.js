'use strict';
// The published types: a TypeScript file written as a library user would write it, importing
// '@tcpmq/node-red-tcpmq' (this package, its dist/index.d.ts), compiles under strict with the
// project's own TypeScript. A broken or missing .d.ts, or one that degrades to `any`, fails.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const ts = require('typescript');

const root = path.join(__dirname, '..', '..');

/** A user's program. The @ts-expect-error lines fail the compile if the types accept anything. */
const USER_CODE = `import { TcpmqBroker, TcpmqClient } from '@tcpmq/node-red-tcpmq';
import type { DeviceRecord } from '@tcpmq/node-red-tcpmq';

async function main(): Promise<void> {
  const broker = new TcpmqBroker({ port: 0 });
  broker.start();
  const id: string = broker.writeMailbox('1', 'x');
  const table: DeviceRecord[] = broker.deviceTable();
  const online: boolean[] = table.map((device) => device.online);
  const client: TcpmqClient = new TcpmqClient({ host: '127.0.0.1', port: 9999, clientId: '1' });
  await client.stop();
  await broker.stop();
  console.log(id, online);

  // @ts-expect-error a port is a number
  new TcpmqBroker({ port: '9999' });
  // @ts-expect-error no such method
  broker.writeMailboxes('1', 'x');
  // @ts-expect-error stop() is a promise of nothing
  const stopped: number = await broker.stop();
  console.log(stopped);
}

main();
`;

/** The program's errors, one line each, with the file and position they point at. */
function compile(dir) {
  const file = path.join(dir, 'user.ts');
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    // Check the package's declaration files too, not only how the user's file uses them.
    skipLibCheck: false,
    target: ts.ScriptTarget.ES2021,
    lib: ['lib.es2021.d.ts'],
    module: ts.ModuleKind.CommonJS,
    moduleResolution: ts.ModuleResolutionKind.Node10,
    esModuleInterop: true,
    types: ['node'],
    typeRoots: [path.join(root, 'node_modules', '@types')],
  });
  const resolved = program.getSourceFiles().map((source) => source.fileName);
  const diagnostics = ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n');
    if (!diagnostic.file) return text;
    const { line, character } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
    return `${path.relative(root, diagnostic.file.fileName)}:${line + 1}:${character + 1}: ${text}`;
  });
  return { resolved, diagnostics };
}

describe('the published types', function () {
  this.timeout(30000);
  let dir;

  before(function () {
    assert.ok(fs.existsSync(path.join(root, 'dist', 'index.d.ts')), 'dist/index.d.ts (npm run build) exists');
    // A project that depends on this package: node_modules/@tcpmq/node-red-tcpmq -> this checkout.
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tcpmq-types-'));
    const link = path.join(dir, 'node_modules', '@tcpmq', 'node-red-tcpmq');
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(root, link, 'dir');
    fs.writeFileSync(path.join(dir, 'user.ts'), USER_CODE);
  });

  after(function () {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("compiles a user's strict TypeScript that imports the broker and the client", function () {
    const { resolved, diagnostics } = compile(dir);
    assert.ok(
      resolved.includes(path.join(root, 'dist', 'index.d.ts')),
      `'@tcpmq/node-red-tcpmq' resolves to dist/index.d.ts; the program read:\n${resolved.join('\n')}`,
    );
    assert.deepEqual(diagnostics, [], 'no type errors');
  });
});
