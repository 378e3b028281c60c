// The client against a real chainlogd, started here from CHAINLOGD_BIN with a config of its own
// in a temp dir. Without CHAINLOGD_BIN the test is skipped, unless CHAINLOG_TESTS_MUST_RUN=1
// (CI), where a skip would hide that nothing was tested: then it fails.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { test } from 'node:test';

import { ChainlogClient, ChainlogError, type AuditEvent, type Receipt } from '../src/index.js';

const BIN = process.env.CHAINLOGD_BIN;
const MUST_RUN = process.env.CHAINLOG_TESTS_MUST_RUN === '1';

/** How long chainlogd may take to print its HTTP address. */
const START_TIMEOUT_MS = 20_000;
/** How long it may take to exit after SIGTERM before it is killed. */
const STOP_TIMEOUT_MS = 10_000;

interface Server {
  url: string;
  adminKey: string;
  acmeKey: string;
  stop(): Promise<void>;
}

/** A key's text as chainlogd makes them: `clk_` and 48 hex digits. */
function newKey(): string {
  return 'clk_' + randomBytes(24).toString('hex');
}

/** The form of a key in the config: only its hash is stored. */
function keyHash(key: string): string {
  return 'sha256:' + createHash('sha256').update(key, 'utf8').digest('hex');
}

function config(adminKey: string, acmeKey: string): string {
  return `listen = "127.0.0.1:0"
http_listen = "127.0.0.1:0"
metrics_listen = ""
data_dir = "."

[[logs]]
name = "default"
segment_size = 1048576
prewrite_segments = false

[[keys]]
id = "admin"
hash = "${keyHash(adminKey)}"
log = "default"
rights = ["append", "read", "admin"]

[[keys]]
id = "acme-only"
hash = "${keyHash(acmeKey)}"
log = "default"
rights = ["append", "read"]
tenants = ["acme"]
`;
}

async function startChainlogd(bin: string): Promise<Server> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chainlog-ts-'));
  const adminKey = newKey();
  const acmeKey = newKey();
  const configPath = path.join(dir, 'chainlogd.toml');
  fs.writeFileSync(configPath, config(adminKey, acmeKey));
  const child = spawn(bin, ['--config', configPath, '--log-level', 'warn'], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const stop = async () => {
    await stopChild(child);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    const addr = await httpAddress(child, () => stderr);
    return { url: `http://${addr}`, adminKey, acmeKey, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** The address of chainlogd's `http on ADDR` line. Its stdout is read to the end (through the
 * same reader) so that a full pipe can never block it. */
function httpAddress(child: ChildProcess, stderr: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      reject(new Error(`chainlogd: ${why}; stderr: ${stderr()}`));
    };
    const timer = setTimeout(() => fail(`no "http on" line in ${START_TIMEOUT_MS} ms`), START_TIMEOUT_MS);
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /http on (\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('error', (e) => fail(`cannot start: ${e.message}`));
    child.once('exit', (code, signal) => fail(`exited (${code ?? signal}) before serving`));
  });
}

/** SIGTERM, and the exit it should cause; SIGKILL if it does not come in time. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

async function rejectsWith(p: Promise<unknown>, fields: Partial<ChainlogError>): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof ChainlogError, `not a ChainlogError: ${String(e)}`);
    for (const [name, value] of Object.entries(fields)) {
      assert.deepEqual((e as unknown as Record<string, unknown>)[name], value, name);
    }
    return true;
  });
}

const HASH = /^[0-9a-f]{64}$/;
const BATCH = 250;
const T0 = Date.UTC(2024, 2, 1);

function batchEvent(i: number): AuditEvent {
  return {
    tenant_id: 'acme',
    actor_id: `user-${i}`,
    action: 'document.viewed',
    resource: 'document',
    resource_id: `doc-${i}`,
    occurred_at: new Date(T0 + i * 1000),
    idempotency_key: `migration_${i}`,
    metadata: { i },
  };
}

test('chainlogd: the client against a real server', async (t) => {
  if (BIN === undefined || BIN === '') {
    if (MUST_RUN) assert.fail('CHAINLOGD_BIN not set, and CHAINLOG_TESTS_MUST_RUN=1 says this test must run');
    t.skip('CHAINLOGD_BIN not set');
    return;
  }
  const server = await startChainlogd(BIN);
  try {
    const admin = new ChainlogClient({ baseUrl: server.url, apiKey: server.adminKey, timeoutMs: 10_000 });
    const acme = new ChainlogClient({ baseUrl: server.url, apiKey: server.acmeKey, timeoutMs: 10_000 });
    const login: AuditEvent = { tenant_id: 'globex', actor_id: 'user-1', action: 'user.login', resource: 'session' };
    let first: Receipt | undefined;
    let receipts: Receipt[] = [];

    await t.test('track: the first event gets seq 0 and a chain hash', async () => {
      first = await admin.track(login, { idempotencyKey: 'login-1' });
      assert.equal(first.seq, 0);
      assert.match(first.hash, HASH);
      assert.equal(first.duplicate, false);
    });

    await t.test('track: the same idempotency key again is the first receipt, a duplicate', async () => {
      const again = await admin.track(login, { idempotencyKey: 'login-1' });
      assert.deepEqual(again, { ...first, duplicate: true });
    });

    await t.test('trackBatch: 250 events, 250 receipts with consecutive seqs', async () => {
      receipts = await admin.trackBatch(Array.from({ length: BATCH }, (_, i) => batchEvent(i)));
      assert.equal(receipts.length, BATCH);
      assert.deepEqual(receipts.map((r) => r.seq), Array.from({ length: BATCH }, (_, i) => i + 1));
      assert.ok(receipts.every((r) => !r.duplicate && HASH.test(r.hash)));
    });

    await t.test('query: a tenant in pages of 100 is 3 pages, count() exact, asc and desc', async () => {
      const pages = [];
      for await (const page of admin.query({ tenant_id: 'acme', limit: 100 })) pages.push(page);
      assert.deepEqual(pages.map((p) => p.data.length), [100, 100, 50]);
      assert.ok(pages.every((p) => p.pagination.total === BATCH && p.pagination.limit === 100));
      assert.equal(pages[2].pagination.next_cursor, null);
      const asc = pages.flatMap((p) => p.data.map((e) => e.seq));
      assert.deepEqual(asc, receipts.map((r) => r.seq));
      assert.equal(await admin.count({ tenant_id: 'acme' }), BATCH);
      const desc: number[] = [];
      for await (const e of admin.events({ tenant_id: 'acme', limit: 100, order: 'desc' })) desc.push(e.seq);
      assert.deepEqual(desc, [...asc].reverse());
    });

    await t.test('get: an event by seq matches its receipt; a seq past the end is null', async () => {
      const r = receipts[10];
      const e = await admin.get(r.seq);
      assert.ok(e !== null);
      assert.equal(e.hash, r.hash);
      assert.equal(e.created_at, r.created_at);
      assert.equal(e.resource_id, 'doc-10');
      assert.equal(e.idempotency_key, 'migration_10');
      assert.deepEqual(e.metadata, { i: 10 });
      assert.equal(Date.parse(e.occurred_at), T0 + 10_000);
      assert.equal(await admin.get(999999), null);
    });

    await t.test('tenants: the acme-only key is refused globex and reads only acme', async () => {
      await rejectsWith(acme.count({ tenant_id: 'globex' }), { status: 403, code: 'forbidden' });
      const tenants = new Set<string | undefined>();
      let n = 0;
      for await (const e of acme.events({ limit: 1000 })) {
        tenants.add(e.tenant_id);
        n++;
      }
      assert.deepEqual([...tenants], ['acme']);
      assert.equal(n, BATCH);
      assert.equal(await acme.get(0), null, 'event 0 is globex\'s');
    });

    await t.test('auth: an unknown key is 401 unauthenticated', async () => {
      const stranger = new ChainlogClient({ baseUrl: server.url, apiKey: newKey() });
      await rejectsWith(stranger.count({}), { status: 401, code: 'unauthenticated' });
    });

    await t.test('validation: a batch with an event missing actor_id is 422, naming it, and stores nothing', async () => {
      const bad = { tenant_id: 'acme', action: 'document.viewed', resource: 'document' } as AuditEvent;
      await rejectsWith(admin.trackBatch([batchEvent(1000), bad]), {
        status: 422,
        code: 'invalid_event',
        index: 1,
        field: 'actor_id',
      });
      assert.equal(await admin.count({}), 1 + BATCH);
    });

    await t.test('head, stats, checkpoint: as the spec types them', async () => {
      const last = receipts[BATCH - 1];
      assert.deepEqual(await admin.head(), { seq: last.seq, hash: last.hash });
      const stats = await admin.stats();
      assert.equal(stats.log, 'default');
      assert.equal(stats.next_seq, last.seq + 1);
      assert.equal(stats.head_hash, last.hash);
      const cp = await admin.checkpoint();
      assert.equal(typeof cp.note, 'string');
      assert.ok(cp.note.length > 0);
      assert.match(cp.verifier_key, /^chainlog\/default\+/);
    });

    await t.test('tail: from seq 0 the stored events in order, then one appended after it started', async () => {
      const stop = new AbortController();
      const timer = setTimeout(() => stop.abort(), 15_000);
      const seqs: number[] = [];
      let later: Receipt | undefined;
      try {
        for await (const e of admin.tail({ from: 0, signal: stop.signal })) {
          seqs.push(e.seq);
          if (e.seq === BATCH) {
            later = await admin.track({ tenant_id: 'acme', actor_id: 'user-x', action: 'document.viewed', resource: 'document' });
          }
          if (later !== undefined && e.seq === later.seq) break;
        }
      } finally {
        clearTimeout(timer);
      }
      assert.ok(later !== undefined, `the tail stopped after seq ${seqs.at(-1)}`);
      assert.deepEqual(seqs, Array.from({ length: BATCH + 2 }, (_, i) => i));
    });
  } finally {
    await server.stop();
  }
});
