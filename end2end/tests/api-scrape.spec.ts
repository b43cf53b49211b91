import { test, expect } from './fixtures/dashboard';
import { freePort, signIn, startServer } from './fixtures/server';
import { createServer, Server } from 'node:http';
import path from 'node:path';

const artifacts = path.resolve(__dirname, '../artifacts');

/** Serves `/metrics` on a free port; `body(n)` is the exposition of the n-th scrape. */
async function target(contentType: string, body: (n: number) => string): Promise<{ url: string; server: Server }> {
  let n = 0;
  const server = createServer((_req, res) => {
    n += 1;
    res.writeHead(200, { 'content-type': contentType });
    res.end(body(n));
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${port}/metrics`, server };
}

// A service instrumented in microseconds (OpenMetrics, with its UNIT line): each scrape finds 100 more
// requests, 80 of them at most 25 ms and the rest at most 50 ms. So p50 interpolates to 10 + 15 × 50/80 =
// 19.375 ms and p95 to 25 + 25 × 15/20 = 43.75 ms: read as seconds they would be a million times that.
const micros = (n: number) => {
  const line = (le: string, c: number) => `rpc_request_duration_microseconds_bucket{route="/pay",le="${le}"} ${c}\n`;
  return (
    '# TYPE rpc_request_duration_microseconds histogram\n' +
    '# UNIT rpc_request_duration_microseconds microseconds\n' +
    '# HELP rpc_request_duration_microseconds Time to answer a request.\n' +
    line('10000.0', 0) + line('25000.0', 80 * n) + line('50000.0', 100 * n) + line('+Inf', 100 * n) +
    `rpc_request_duration_microseconds_count{route="/pay"} ${100 * n}\n` +
    `rpc_request_duration_microseconds_sum{route="/pay"} ${2_500_000 * n}\n# EOF\n`
  );
};

// node_exporter's kind of target: it answers, with no request metrics at all.
const node = () => '# HELP node_load1 1m load average.\n# TYPE node_load1 gauge\nnode_load1 0.42\n';

test('a scrape target says the unit it came in; one without request metrics is up and not the default', async ({ page }) => {
  const pay = await target('application/openmetrics-text; version=1.0.0; charset=utf-8', micros);
  const exporter = await target('text/plain; version=0.0.4', node);
  const port = await freePort();
  const server = await startServer(port, undefined, '', {
    WATCHPOST_SCRAPE: `exporter=${exporter.url},pay=${pay.url}`,
  });
  try {
    await signIn(page.context(), server.url);
    await page.goto(server.url);
    const panel = page.getByTestId('panel-api');
    const service = panel.getByTestId('api-service');
    await expect(service.locator('option', { hasText: 'exporter (no request metrics)' })).toHaveCount(1);
    // The first service with request metrics is shown first, not the exporter that sorts before it.
    await expect(service).not.toHaveValue('exporter');
    await service.selectOption('pay');
    await expect(panel.getByTestId('api-unit')).toHaveText('exposed in microseconds');
    await expect(panel.getByTestId('api-summary')).toContainText(/p95 43\.[78] ms/);
    const row = panel.getByTestId('api-route').filter({ hasText: '/pay' });
    await expect(row).toContainText('19.4');
    await page.setViewportSize({ width: 1440, height: 1000 });
    await panel.screenshot({ path: path.join(artifacts, 'api-scrape-units.png') });

    await service.selectOption('exporter');
    await expect(panel.getByTestId('api-no-request-metrics')).toContainText('Up, no request metrics');
    await expect(panel.getByTestId('api-down')).toHaveCount(0);
    await panel.screenshot({ path: path.join(artifacts, 'api-scrape-no-request-metrics.png') });
  } finally {
    await server.stop();
    pay.server.close();
    exporter.server.close();
  }
});
