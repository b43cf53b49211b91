// The Hosts page under a live fleet, in Debian's Chromium (headless): signs in, opens /hosts, waits for the
// rows, then times every animation frame and long task for a while. Prints frames per second, the frame
// gaps (p50, p95, max) and the long tasks (count, total), which is what "stays smooth" means to a person
// watching the page. Figures only.
//
//   node bench/fleet/hosts-page.mjs URL USER PASSWORD [SECONDS=10] [HOSTS=200]
import { chromium } from 'playwright';

const [url, user, password, seconds = '10', hosts = '200'] = process.argv.slice(2);
if (!url || !user || !password) {
  console.error('usage: node bench/fleet/hosts-page.mjs URL USER PASSWORD [SECONDS] [HOSTS]');
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const login = await context.request.post(`${url}/api/login`, { data: { name: user, password } });
  if (!login.ok()) throw new Error(`sign-in failed: ${login.status()}`);
  const page = await context.newPage();
  const opened = Date.now();
  await page.goto(`${url}/hosts`);
  await page.waitForFunction(
    (n) => document.querySelectorAll('[data-testid=host-row]').length >= n,
    Number(hosts),
    { timeout: 60_000 },
  );
  const ready = Date.now() - opened;
  const result = await page.evaluate(async (ms) => {
    const long = [];
    const observer = new PerformanceObserver((list) => list.getEntries().forEach((e) => long.push(e.duration)));
    observer.observe({ entryTypes: ['longtask'] });
    const gaps = [];
    await new Promise((done) => {
      let last = performance.now();
      const end = last + ms;
      const frame = (t) => {
        gaps.push(t - last);
        last = t;
        if (t < end) requestAnimationFrame(frame);
        else done();
      };
      requestAnimationFrame(frame);
    });
    observer.disconnect();
    const rows = document.querySelectorAll('[data-testid=host-row]').length;
    return { gaps, long, rows };
  }, Number(seconds) * 1000);
  const sorted = [...result.gaps].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const total = result.gaps.reduce((a, b) => a + b, 0);
  const longTotal = result.long.reduce((a, b) => a + b, 0);
  console.log(`Hosts page with ${result.rows} rows: ready (every row drawn) ${ready} ms after opening`);
  console.log(
    `frames            ${(result.gaps.length / (total / 1000)).toFixed(1)} per second over ${(total / 1000).toFixed(1)} s; ` +
      `gap p50 ${at(0.5).toFixed(1)} ms, p95 ${at(0.95).toFixed(1)} ms, max ${sorted[sorted.length - 1].toFixed(1)} ms`,
  );
  console.log(
    `long tasks        ${result.long.length} (over 50 ms each), ${longTotal.toFixed(0)} ms in all, ` +
      `longest ${result.long.length ? Math.max(...result.long).toFixed(0) : 0} ms`,
  );
} finally {
  await browser.close();
}
