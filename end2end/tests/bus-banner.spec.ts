import { test, expect } from './fixtures/dashboard';
import { freePort, signIn, startServer } from './fixtures/server';
import { spawn, ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const artifacts = path.resolve(__dirname, '../artifacts');

/** A nats-server of this test's own (JetStream, file storage in `store`) on `port`, so it can be killed;
 * resolves once it listens. */
async function startNats(port: number, store: string): Promise<ChildProcess> {
  const child = spawn('/usr/sbin/nats-server', ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', store], {
    stdio: 'ignore',
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    const listening = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (listening) return child;
    if (Date.now() > deadline) throw new Error('nats-server did not listen');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function kill(child: ChildProcess) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

// Scale-out (issue 20): the instance serving a tab loses the bus it shares with the others. The tab keeps
// its stream (the instance is fine), but every event goes through the bus, its own server's readings too:
// the tab says why nothing moves, and the values go stale; a tab opened meanwhile says it at once; both stop
// saying it when the bus is back, without a reload, and the readings move again.
test('every tab says so while the event bus is away, and stops when it is back', async ({ page, context, dashboard }) => {
  const natsPort = await freePort();
  const store = mkdtempSync(path.join(tmpdir(), 'watchpost-e2e-nats-'));
  let nats = await startNats(natsPort, store);
  const server = await startServer(await freePort(), undefined, '', {
    WATCHPOST_BUS: `nats://127.0.0.1:${natsPort}`,
    WATCHPOST_BUS_STREAM: `e2e-bus-banner-${process.pid}`,
  });
  try {
    await signIn(context, server.url);
    await page.goto(server.url);
    await expect(dashboard.connection).toHaveAttribute('data-state', 'live');
    await expect(page.getByTestId('bus-alert')).toHaveCount(0);
    await expect(dashboard.cpuValue).toBeVisible();

    await kill(nats);
    const banner = page.getByTestId('bus-alert');
    await expect(banner).toBeVisible({ timeout: 15_000 });
    await expect(banner).toContainText('The event bus is unreachable: live updates are paused');
    await expect(banner).toHaveAttribute('role', 'alert');
    // The stream is there (pings), the readings are not: three intervals later they say they are stale.
    await expect(dashboard.connection).toHaveAttribute('data-state', 'live');
    await expect(dashboard.health).toHaveClass(/stale/, { timeout: 15_000 });
    await page.screenshot({ path: path.join(artifacts, 'bus-away.png') });

    const second = await context.newPage();
    await second.goto(`${server.url}/hosts`);
    await expect(second.getByTestId('bus-alert')).toBeVisible({ timeout: 15_000 });

    nats = await startNats(natsPort, store);
    await expect(banner).toHaveCount(0, { timeout: 15_000 });
    await expect(second.getByTestId('bus-alert')).toHaveCount(0, { timeout: 15_000 });
    await expect(dashboard.connection).toHaveAttribute('data-state', 'live');
    await expect(dashboard.health).not.toHaveClass(/stale/, { timeout: 15_000 });
  } finally {
    await server.stop();
    await kill(nats);
    rmSync(store, { recursive: true, force: true });
  }
});
