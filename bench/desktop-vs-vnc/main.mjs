// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * What a user feels, side by side (issue 13; bench/README.md, "Desktop vs
 * VNC"): this project's page (hfe-viewer) against QEMU's own VNC server seen
 * through noVNC (Debian's novnc + websockify), in one run, on the same VM
 * (QEMU runs the project's host path and -vnc at once), in the same headless
 * Chromium, the same scripted session on both pages, measured in the page with
 * one clock (probe.js): key-, wheel-, click- and drag-to-photon, cursor
 * motion-to-photon, WebSocket bytes per phase.
 *
 *   run.sh ../../bench/desktop-vs-vnc/main.mjs [--hosts dbus,module]
 *          [--sizes 1280x800,1920x1080] [--samples 20] [--module-gl egl-headless]
 *          [--daemon-args "--gop 0"]
 *
 * One page at a time: hfe-viewer runs only while its page is measured (else
 * its subscription would keep the host encoding during noVNC's turn), and
 * QEMU's VNC server sends nothing without a client. The output's mode is set
 * by hfe-viewer --size WxH --replug and stays when it exits.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

import { analyse, bootDesktop, findTerminal, keyOf, openTerminal, shellShown, stable, toPage }
	from '../../tests/browser/desktop.mjs';
import { CHROMIUM, chromium, sleep, start, stop, viewerUrl, waitFor, workDirs }
	from '../../tests/browser/lib.mjs';

const HERE = path.dirname(new URL(import.meta.url).pathname);
const NOVNC = '/usr/share/novnc';

function option(name, def) {
	const i = process.argv.indexOf('--' + name);
	return i > 0 ? process.argv[i + 1] : def;
}
const HOSTS = option('hosts', 'dbus,module').split(',');
const SIZES = option('sizes', '1280x800,1920x1080').split(',').map((s) => {
	const [w, h] = s.split('x').map(Number);
	return { w, h, name: s };
});
const SAMPLES = Number(option('samples', '20'));
const MODULE_GL = option('module-gl', 'egl-headless');
// more arguments for the daemon (dbus path), e.g. "--gop 0 --bitrate 1M"
const DAEMON_ARGS = option('daemon-args', '').split(' ').filter((a) => a);
const PHOTON_TIMEOUT_MS = 5000;
const BAR = 80; // room above the picture for each page's own bar

if (HOSTS.some((h) => h !== 'dbus' && h !== 'module') || !(SAMPLES > 0) ||
    SIZES.some((s) => !(s.w >= 320 && s.h >= 200))) {
	console.log('usage: main.mjs [--hosts dbus,module] [--sizes WxH,...] [--samples N] ' +
		    '[--module-gl egl-headless|helix] [--daemon-args "ARGS"]');
	process.exit(2);
}

// novnc and websockify: scripts/deps.sh bench installs them (as root).
if (!fs.existsSync(path.join(NOVNC, 'vnc_lite.html')) || !fs.existsSync('/usr/bin/websockify'))
	execFileSync(path.join(HERE, '../../scripts/deps.sh'), ['bench'], { stdio: 'inherit' });

const { work, out } = workDirs('hfe-bench-vnc-');

async function freePort() {
	return new Promise((resolve) => {
		const s = net.createServer().listen(0, '127.0.0.1', () => {
			const p = s.address().port;
			s.close(() => resolve(p));
		});
	});
}

const pct = (a, q) => {
	if (!a.length)
		return null;
	const s = [...a].sort((x, y) => x - y);
	return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
};

// The two pages: where each one's screen canvas is.
const PAGES = {
	hfe: { sel: '#screen' },
	novnc: { sel: '#screen canvas' },
};

// One measured input: arm the probe on rect (picture pixels), run act (which
// dispatches the event), wait for the paint. Returns ms or null (timed out).
async function photon(page, probe, act) {
	if (!await page.evaluate((p) => window.__bench.arm(p), probe))
		throw new Error('probe rectangle outside the picture: ' + JSON.stringify(probe));
	await act();
	const r = await waitFor('the paint', () => page.evaluate(() => {
		const r = window.__bench.result();
		return r.tPaint !== null && r;
	}), PHOTON_TIMEOUT_MS).catch(() => null);
	await page.evaluate(() => { window.__bench.probe = null; });
	return r && { ms: r.tPaint - r.tEvent, how: r.how, on: probe.on, r };
}

/*
 * The latency split of one sample (bench/README.md): where the time between
 * the DOM event and the paint went. All stamps on one clock: the machine's
 * CLOCK_MONOTONIC in ms (the page's clock mapped by its clock sync). Ours: the
 * viewer's and the host's debug lines (HFE_LOG=debug: "viewer input ... in
 * at T ms", "input KIND A B to the VM at T ms") and the stamps of the access
 * unit that made the paint. noVNC: when its messages arrived.
 */
const VIEWER_IN = /viewer input '(\w+)[^']*' in at ([\d.]+) ms/g;
const HOST_IN = /input (key|move|buttons|wheel) \d+ \d+ to the VM at ([\d.]+) ms/g;
const HOST_KIND = { keydown: 'key', wheel: 'wheel', pointerdown: 'buttons', pointermove: 'move' };

function stamps(text, re) {
	return [...text.matchAll(re)].map((m) => ({ kind: m[1], t: Number(m[2]) }));
}

function split(v, logs) {
	const r = v.r;
	const d = { total: v.ms };
	if (r.tFirstRx !== null)
		d.firstRx = r.tFirstRx - r.tEvent;
	if (r.tRx !== null)
		d.paintRx = r.tRx - r.tEvent; // the message that brought the paint
	if (r.tRx !== null && v.how === 'picture') {
		d.rxToPaint = r.tPaint - r.tRx;
		d.drawCall = r.drawMs;
		d.probeRead = r.grabMs;
	}
	if (r.clockOffsetMs === null || r.clockOffsetMs === undefined)
		return d; // noVNC's page
	const off = r.clockOffsetMs, ev = r.tEvent + off;
	// the clock sync is good to its round trip: a little slack before the event
	const after = (list, t0, kind) => list.find((x) => x.t >= t0 - 1 && (!kind || x.kind === kind));
	const vin = after(logs.viewer, ev, v.on === 'keydown' ? 'key' : 'ptr');
	const hin = vin && after(logs.host, vin.t, HOST_KIND[v.on]);
	if (vin)
		d.pageToViewer = vin.t - ev;
	if (vin && hin)
		d.viewerToVm = hin.t - vin.t;
	const au = r.au;
	if (au) {
		if (hin)
			d.vmToDamage = au.damage - hin.t; // the guest's part (and QEMU's)
		d.damageToViewer = au.viewerIn - au.damage; // pacing, encode, the socket
		d.viewerRelay = au.viewerOut - au.viewerIn;
		d.viewerToPage = au.rx + off - au.viewerOut;
		if (au.decoded !== undefined) {
			d.decode = au.decoded - au.rx;
			d.draw = r.tPaint - au.decoded;
		}
	}
	return d;
}

const bytes = (page) => page.evaluate(() => ({ rx: window.__bench.rx, tx: window.__bench.tx,
	rxText: window.__bench.rxText, rxMsgs: window.__bench.rxMsgs, t: performance.now(),
	decoded: window.__bench.decodeMs.length, aus: window.__bench.aus.length }));

// The rectangle r (x0 y0 x1 y1) as a probe, clamped to the picture.
function rect(r, size, on, minPx) {
	const x = Math.max(0, Math.round(r.x0)), y = Math.max(0, Math.round(r.y0));
	return { x, y, w: Math.min(size.w, Math.round(r.x1)) - x,
		 h: Math.min(size.h, Math.round(r.y1)) - y, on, minPx };
}

/*
 * The scripted session, the same on both pages: scene (found on hfe-viewer's
 * page, in picture pixels) has the terminal's box. Each phase: its samples'
 * photon times and the WebSocket bytes received over it.
 */
async function session(page, sel, scene, size, logs) {
	const res = {};
	const at = (x, y) => toPage(page, x, y, sel);
	const t = scene.term;
	const mid = await at((t.x0 + t.x1) / 2, (t.y0 + t.y1) / 2);
	async function phase(name, fn) {
		const b0 = await bytes(page);
		const ms = [], how = {}, got = [];
		let lost = 0;
		await fn(async (probe, act) => {
			const v = await photon(page, probe, act);
			if (v === null) {
				lost++;
			} else {
				ms.push(v.ms);
				how[v.how] = (how[v.how] || 0) + 1;
				got.push(v);
			}
			await sleep(250); // let the rest of the update land
		});
		const l = logs();
		const parsed = { viewer: stamps(l.viewer, VIEWER_IN), host: stamps(l.host, HOST_IN) };
		const splits = got.map((v) => split(v, parsed));
		const b1 = await bytes(page);
		const s = (b1.t - b0.t) / 1000;
		// hfe-viewer's page: time in the decoder, and its own latency figures
		// (docs/viewer.md: damage -> viewer server, server -> decoded; means)
		const inside = await page.evaluate(([from, fromAu]) => ({
			decodeMs: window.__bench.decodeMs.slice(from),
			aus: window.__bench.aus.slice(fromAu),
			hostMs: window.hfeStats ? window.hfeStats.hostMs : null,
			viewerMs: window.hfeStats ? window.hfeStats.viewerMs : null,
		}), [b0.decoded, b0.aus]);
		res[name] = { ms, lost, how, splits, rxBytes: b1.rx - b0.rx, txBytes: b1.tx - b0.tx,
			      rxTextBytes: b1.rxText - b0.rxText, rxMsgs: b1.rxMsgs - b0.rxMsgs,
			      seconds: s, rxPerS: (b1.rx - b0.rx) / s, ...inside };
	}
	const key = async (ch) => {
		const k = keyOf(ch);
		await page.keyboard.press(k.code);
	};

	// focus the terminal (a left click in it), a fresh line
	await page.mouse.move(mid.x, mid.y);
	await sleep(500);
	await page.mouse.click(mid.x, mid.y);
	await sleep(1000);
	await page.keyboard.press('Control+KeyU');
	await sleep(1000);

	await phase('idle', async () => sleep(3000));

	// the terminal's text area
	const termProbe = (on) => rect(t, size, on, 4);
	await phase('typing', async (measure) => {
		for (let i = 0; i < SAMPLES; i++) {
			const ch = 'abcdefghijklmnopqrstuvwxyz'[i % 26];
			await measure(termProbe('keydown'), () => key(ch));
		}
	});
	await page.keyboard.press('Control+KeyU');
	for (const ch of 'seq 1 400\n')
		await key(ch);
	await sleep(4000);

	await phase('scrolling', async (measure) => {
		for (let i = 0; i < SAMPLES; i++)
			await measure(termProbe('wheel'),
				      () => page.mouse.wheel(0, i < SAMPLES / 2 ? -100 : 100));
	});

	// a right click in the terminal opens its menu; a left click beside closes it
	await phase('click', async (measure) => {
		for (let i = 0; i < SAMPLES; i++) {
			const x = t.x0 + 40 + (i % 4) * 20, y = t.y0 + 40 + (i % 3) * 20;
			const c = await at(x, y);
			await page.mouse.move(c.x, c.y);
			await sleep(100);
			await measure(rect({ x0: x + 4, y0: y + 4, x1: x + 84, y1: y + 44 }, size,
					   'pointerdown', 20),
				      () => page.mouse.click(c.x, c.y, { button: 'right' }));
			await sleep(300);
			const away = await at(t.x1 - 30, t.y1 - 30);
			await page.mouse.click(away.x, away.y);
			await sleep(500);
		}
	});

	// drag the window by its title bar, right in steps, then back
	const STEP = 24, N = Math.max(2, Math.round(SAMPLES / 2));
	await phase('window-move', async (measure) => {
		let x = (t.x0 + t.x1) / 2;
		const y = scene.titleY;
		let c = await at(x, y);
		await page.mouse.move(c.x, c.y);
		await sleep(500);
		await page.mouse.down();
		await sleep(500);
		for (let i = 0; i < 2 * N; i++) {
			const d = i < N ? STEP : -STEP;
			const off = i < N ? i * STEP : (2 * N - i) * STEP;
			const edge = d > 0 ? t.x1 + off : t.x0 + off - STEP;
			x += d;
			c = await at(x, y);
			await measure(rect({ x0: edge, y0: t.y0, x1: edge + STEP, y1: t.y1 }, size,
					   'pointermove', 20), () => page.mouse.move(c.x, c.y));
		}
		await page.mouse.up();
	});
	await sleep(1000);

	// the mouse over the desktop (below the terminal, or right of it): the
	// arrow's body (tip at the pointer) in its new place, or the overlay moved
	const CSTEP = 16;
	await phase('mouse', async (measure) => {
		const below = t.y1 + 60 < size.h - 30;
		const y0 = below ? t.y1 + 40 : size.h / 2, x0 = below ? 100 : t.x1 + 40;
		const n = Math.min(SAMPLES, Math.floor((size.w - x0 - 40) / CSTEP));
		let c = await at(x0, y0);
		await page.mouse.move(c.x, c.y);
		await sleep(1000);
		for (let i = 1; i <= n; i++) {
			const x = x0 + CSTEP * i;
			c = await at(x, y0);
			await measure({ ...rect({ x0: x + 1, y0: y0 + 3, x1: x + 9, y1: y0 + 15 }, size,
						'pointermove', 8), cursor: true },
				      () => page.mouse.move(c.x, c.y));
		}
	});
	await page.keyboard.press('Control+KeyU');
	return res;
}

async function openHfe(browser, url, size) {
	const page = await browser.newPage({ viewport: { width: size.w, height: size.h + BAR } });
	await page.addInitScript({ path: path.join(HERE, 'probe.js') });
	await page.goto(url);
	await page.evaluate((s) => { window.__bench.screenSel = s; }, PAGES.hfe.sel);
	await waitFor(`hfe-viewer's page at ${size.name}`, () => page.evaluate((s) =>
		window.hfeStats.framesDecoded > 0 && window.hfeStats.input &&
		`${window.hfeStats.width}x${window.hfeStats.height}` === s, size.name), 120000);
	return page;
}

// size null: whatever the guest's mode is.
async function openNovnc(browser, port, size) {
	const page = await browser.newPage({ viewport: size
		? { width: size.w, height: size.h + BAR } : { width: 1100, height: 900 } });
	await page.addInitScript({ path: path.join(HERE, 'probe.js') });
	// vnc_lite.html connects at once, to websockify beside it (path websockify)
	await page.goto(`http://127.0.0.1:${port}/vnc_lite.html?path=websockify`);
	await page.evaluate((s) => { window.__bench.screenSel = s; }, PAGES.novnc.sel);
	await waitFor(`noVNC's canvas at ${size ? size.name : 'any size'}`, () =>
		page.evaluate((s) => {
			const c = document.querySelector('#screen canvas');
			return c && c.width > 0 && (!s || `${c.width}x${c.height}` === s);
		}, size && size.name), 60000);
	await sleep(3000); // the first full update
	return page;
}

// "weston ready" comes before weston-desktop-shell has started; an output
// replugged then kills it (weston 10: "weston-desktop-shell apparently cannot
// run at all", seen here). So before the first size, wait (through noVNC) for
// the shell's background: weston alone shows black.
async function waitShell(browser, port) {
	const page = await openNovnc(browser, port, null);
	await waitFor('weston-desktop-shell\'s background', () => page.evaluate(shellShown,
		PAGES.novnc.sel), 180000);
	await sleep(2000);
	await page.close();
}

// Lit pixels in the picture (a black screen has none): a look, beside the screenshot.
async function lit(page, sel) {
	return page.evaluate((sel) => {
		const c = document.querySelector(sel);
		const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		let n = 0;
		for (let i = 0; i < d.length; i += 64)
			n += d[i] + d[i + 1] + d[i + 2] > 90;
		return n / (d.length / 64);
	}, sel);
}

// Runs in hfe-viewer's page: down the column x from y, the first row of
// weston-terminal's light title bar and of its dark text area below it.
function frameRows([x, y]) {
	const c = document.getElementById('screen');
	const d = c.getContext('2d').getImageData(x, 0, 1, c.height).data;
	const luma = (y) => 0.299 * d[4 * y] + 0.587 * d[4 * y + 1] + 0.114 * d[4 * y + 2];
	let title = -1;
	for (let i = Math.max(0, y); i < c.height; i++) {
		if (title < 0 && luma(i) > 180)
			title = i;
		else if (title >= 0 && luma(i) < 20)
			return { title, text: i };
	}
	return null;
}

// The pointer onto the panel's middle (above the rows analyse() looks at), and
// the picture settled. On the D-Bus path weston (pixman) draws the pointer into
// the picture, and its black outline is dark to analyse(): left where the
// previous size's mouse phase put it (left of and below the terminal) it
// widened the terminal's box past the title bar ("no title bar above the
// terminal" when 1920x1080 followed 1280x800); left on the launcher, the
// launcher's tooltip appears, dark as well.
async function parkPointer(page) {
	const [w, h] = await page.evaluate((sel) => [document.querySelector(sel).width,
						     document.querySelector(sel).height], PAGES.hfe.sel);
	const park = await toPage(page, w / 2, 8);
	await page.mouse.move(park.x, park.y);
	await stable(page, { x0: 0, y0: 40, x1: w, y1: h }, 800);
}

// The scene on hfe-viewer's page: a terminal (opened from the panel if none), its
// title bar's row (titleY) and its text area (term).
async function scene(page, shot) {
	await waitFor('the desktop in hfe-viewer\'s page', () => page.evaluate(shellShown,
		PAGES.hfe.sel), 60000);
	await parkPointer(page);
	let term = await page.evaluate(analyse, null).then((a) => a.box);
	if (!term || term.x1 - term.x0 < 200) {
		await openTerminal(page);
		await sleep(3000);
		await parkPointer(page); // off the launcher: its tooltip is dark too
	}
	term = await findTerminal(page);
	await stable(page, term, 800);
	// the dark box starts at the frame's shadow or the title's glyphs
	const rows = await page.evaluate(frameRows, [term.x0 + 30, term.y0 - 12]);
	if (!rows) {
		await page.screenshot({ path: shot });
		throw new Error('no title bar above the terminal at ' + JSON.stringify(term) +
				' (picture: ' + shot + ')');
	}
	return { term: { ...term, y0: rows.text }, titleY: rows.title + 10 };
}

const results = [];

async function runHost(browser, host) {
	const hw = path.join(work, host);
	fs.mkdirSync(hw);
	const vncSock = path.join(hw, 'vnc.sock');
	// HFE_LOG=debug: the host's input stamps (the module's go to QEMU's helix_log
	// trace event)
	const vm = await bootDesktop({ host, work: hw, gl: MODULE_GL, daemonArgs: DAEMON_ARGS,
				       consoleLog: path.join(out, `vnc-${host}-console.log`),
				       env: { HFE_LOG: 'debug' },
				       extraArgs: ['-vnc', `unix:${vncSock}`,
						   ...(host === 'module' ? ['-trace', 'helix_log'] : [])] });
	await waitFor('the VNC socket', () => fs.existsSync(vncSock), 30000);
	const port = await freePort();
	const ws = start('websockify', 'websockify', ['--web', NOVNC, '--unix-target', vncSock,
						      `127.0.0.1:${port}`]);
	await waitFor('websockify', () => fetch(`http://127.0.0.1:${port}/vnc_lite.html`)
		.then((r) => r.ok, () => false), 30000);
	await waitShell(browser, port);
	for (const size of SIZES) {
		const viewer = start('viewer', process.env.HFE_VIEWER, ['--connect', 'unix:' + vm.ctl,
			'--scanout', '0', '--http', '127.0.0.1:0', '--control', '--size', size.name,
			'--replug'], { HFE_LOG: 'debug' });
		const url = await viewerUrl(viewer);
		const logs = () => ({ viewer: viewer.stderrText, host: vm.host.stderrText });
		const hp = await openHfe(browser, url, size);
		await waitFor(`weston at ${size.name}`, () => vm.westonMode() === size.name, 60000);
		const sc = await scene(hp, path.join(out, `vnc-${host}-${size.name}-noscene.png`));
		console.log(`${host} ${size.name}: terminal at ${JSON.stringify(sc.term)}`);
		const row = { host, size: size.name, scene: sc };
		await hp.screenshot({ path: path.join(out, `vnc-${host}-${size.name}-hfe.png`) });
		row.hfeLit = await lit(hp, PAGES.hfe.sel);
		row.hfe = await session(hp, PAGES.hfe.sel, sc, size, logs);
		await hp.screenshot({ path: path.join(out, `vnc-${host}-${size.name}-hfe-end.png`) });
		await hp.close();
		await stop(viewer);

		const np = await openNovnc(browser, port, size);
		await np.screenshot({ path: path.join(out, `vnc-${host}-${size.name}-novnc.png`) });
		row.novncLit = await lit(np, PAGES.novnc.sel);
		row.novnc = await session(np, PAGES.novnc.sel, sc, size, logs);
		await np.screenshot({ path: path.join(out, `vnc-${host}-${size.name}-novnc-end.png`) });
		await np.close();
		results.push(row);
		report(row);
		fs.writeFileSync(path.join(out, 'vnc-results.json'), JSON.stringify(results, null, 1));
	}
	await stop(ws);
	await stop(vm.qemu, 20000);
}

const f1 = (v) => (v === null || v === undefined ? '–' : v.toFixed(1));

function report(row) {
	console.log(`\n${row.host} ${row.size} (lit pixels: hfe ${(row.hfeLit * 100).toFixed(0)} %, ` +
		    `noVNC ${(row.novncLit * 100).toFixed(0)} %)`);
	console.log('phase        | page  | n  lost | p50 ms | p99 ms | rx kB/s |   rx kB | seen by');
	for (const ph of ['idle', 'typing', 'scrolling', 'click', 'window-move', 'mouse'])
		for (const who of ['hfe', 'novnc']) {
			const r = row[who][ph];
			console.log(`${ph.padEnd(12)} | ${who.padEnd(5)} | ${String(r.ms.length).padStart(2)} ` +
				    `${String(r.lost).padStart(4)} | ${f1(pct(r.ms, 0.5)).padStart(6)} | ` +
				    `${f1(pct(r.ms, 0.99)).padStart(6)} | ${f1(r.rxPerS / 1000).padStart(7)} | ` +
				    `${f1(r.rxBytes / 1000).padStart(7)} | ${JSON.stringify(r.how)}` +
				    ` | ${r.rxMsgs} messages, ${f1(r.rxTextBytes / 1000)} kB text` +
				    (who === 'hfe' ? ` | decoder p50 ${f1(pct(r.decodeMs, 0.5))} ms ` +
				     `(${r.decodeMs.length} AUs), host ${f1(r.hostMs)}, ` +
				     `server->decoded ${f1(r.viewerMs)} | AU bytes ` +
				     `${r.aus.map(([b, k]) => (k ? 'K' : '') + b).join(' ')}` : ''));
		}
	console.log('split, p50 ms (bench/README.md): ' + SPLIT.join(', '));
	for (const ph of ['typing', 'scrolling', 'click', 'window-move', 'mouse'])
		for (const who of ['hfe', 'novnc']) {
			const sp = row[who][ph].splits;
			const cells = SPLIT.map((k) => {
				const vals = sp.map((d) => d[k]).filter((x) => x !== undefined);
				return vals.length ? f1(pct(vals, 0.5)) : '–';
			});
			console.log(`${ph.padEnd(12)} | ${who.padEnd(5)} | ${cells.join(' | ')}`);
		}
}

const SPLIT = ['total', 'firstRx', 'paintRx', 'rxToPaint', 'drawCall', 'probeRead', 'pageToViewer', 'viewerToVm',
	'vmToDamage', 'damageToViewer', 'viewerRelay', 'viewerToPage', 'decode', 'draw'];

async function main() {
	const load0 = fs.readFileSync('/proc/loadavg', 'utf8').trim();
	const t0 = Date.now();
	const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
	const missed = [];
	try {
		for (const host of HOSTS)
			await runHost(browser, host).catch((e) => {
				// a QEMU built without VNC cannot be compared: say so, go on
				if (!/VNC support is disabled/.test(String(e && e.message)))
					throw e;
				missed.push(`${host}: not measured, this QEMU has no VNC server ` +
					    '(the patched QEMU needs --enable-vnc in qemu/build.sh)');
			});
	} finally {
		await browser.close();
	}
	for (const m of missed)
		console.log('FAIL ' + m);
	console.log(`\nload before: ${load0}; after: ` +
		    `${fs.readFileSync('/proc/loadavg', 'utf8').trim()}; ` +
		    `${((Date.now() - t0) / 60000).toFixed(1)} min`);
	console.log(`screenshots, console logs, vnc-results.json: ${out}`);
	if (missed.length)
		process.exit(1);
}

main().then(() => process.exit(0), (e) => {
	console.log('FAIL ' + (e && e.stack || e));
	process.exit(1);
});
