// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Browser test of hfe-viewer, as a person would use it: the daemon serves its
 * moving test scanout, hfe-viewer subscribes and serves the page, Chromium
 * (driven by Playwright) opens it. Checked:
 *  - the canvas shows the test picture: its background matches the test
 *    source's gradient, its frame counter reads, and a second later the counter
 *    has advanced by about a second's worth of frames;
 *  - no decoder errors, no delta frame before the first keyframe, fps > 0;
 *  - a second page joining mid-GOP decodes quickly (the daemon runs with
 *    --gop 0: without the viewer's KEYFRAME_REQ it would never get an IDR),
 *    while the first keeps going; a reload decodes again;
 *  - a client that stops acknowledging is skipped, then resynced with a
 *    keyframe, without slowing the page;
 *  - the URL carries the viewer's token: without it, or with a wrong one, the
 *    page, /stats.json and the WebSocket are refused; a page of another
 *    origin is refused its WebSocket (never opened, no frames);
 *  - over HTTPS (--tls-cert, a certificate made here with openssl) on a
 *    non-loopback address the page is a secure context and plays; plain
 *    HTTP to that port gets no page;
 *  - a viewer restarted with another token: its old page says so; restarted
 *    with the same one (HFE_VIEWER_TOKEN): the page resumes;
 *  - the viewer survives the daemon restarting;
 *  - Ctrl-C finishes the MP4, which ffprobe reads with the frame count the
 *    viewer reported.
 * Screenshots are kept in $HFE_BROWSER_OUT for a person to look at.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

import { CHROMIUM, check, chromium, runTest, sleep, start, stop, viewerUrl, waitFor, workDirs }
	from './lib.mjs';

const DAEMON = process.env.HFE_DAEMON;
const VIEWER = process.env.HFE_VIEWER;
const FPS = 30;
const W = 1280, H = 720;

const { work, out } = workDirs('hfe-browser-');
const sock = path.join(work, 'hfe.sock');
const mp4 = path.join(out, 'viewer.mp4');
fs.rmSync(mp4, { force: true });

function startDaemon() {
	fs.rmSync(sock, { force: true });
	// --gop 0: IDRs only on subscribe and on request.
	return start('daemon', DAEMON, ['--listen', 'unix:' + sock, '--test-scanout',
					`0:${W}x${H}@${FPS}`, '--gop', '0']);
}

/* ---- page analysis (runs in the page) ---- */

// Reads the canvas: mean luma, how much of a grid of sample points matches
// the test source's background (lib/src/testsrc.c), the 8-digit frame
// counter (7 segments, top left), and a coarse luma picture for diffs.
function analyseCanvas() {
	const c = document.getElementById('screen');
	const w = c.width, h = c.height;
	const d = c.getContext('2d').getImageData(0, 0, w, h).data;
	const px = (x, y) => {
		const i = (y * w + x) * 4;
		return [d[i], d[i + 1], d[i + 2]];
	};
	const luma = (p) => 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];

	let sum = 0, n = 0;
	const coarse = [];
	for (let y = 2; y < h; y += 8)
		for (let x = 2; x < w; x += 8) {
			const l = luma(px(x, y));
			coarse.push(Math.round(l));
			sum += l;
			n++;
		}

	let match = 0, total = 0;
	for (let y = 60; y < h - 20; y += 47)
		for (let x = 20; x < w - 20; x += 53) {
			if (x % 128 < 6 || y % 128 < 6 || x % 128 > 124 || y % 128 > 124)
				continue; // grid lines, blurred by the codec
			if (x < 150 && y < 50)
				continue; // the counter
			const r = Math.floor(x * 255 / (w - 1)), g = Math.floor(y * 255 / (h - 1));
			const b = 128 + Math.floor(((x + y) % 128) / 2);
			const p = px(x, y);
			total++;
			const near = (u, v) => Math.abs(u - v) < 28;
			if (near(p[0], r) && near(p[1], g) && near(p[2], b))
				match++;
		}

	const seg7 = [0x3f, 0x06, 0x5b, 0x4f, 0x66, 0x6d, 0x7d, 0x07, 0x7f, 0x6f];
	// Segment centres a..g inside a 12x20 digit cell.
	const segs = [[6, 1], [10, 5], [10, 15], [6, 18], [1, 15], [1, 5], [6, 10]];
	let counter = '';
	for (let k = 0; k < 8 && w > 140 && h > 40; k++) {
		const x0 = 8 + k * 16 + 2, y0 = 8 + 4;
		let bits = 0;
		segs.forEach(([sx, sy], i) => {
			if (luma(px(x0 + sx, y0 + sy)) > 128)
				bits |= 1 << i;
		});
		const digit = seg7.indexOf(bits);
		counter += digit < 0 ? '?' : String(digit);
	}
	return { w, h, mean: sum / n, bgMatch: total ? match / total : 0, counter, coarse };
}

// Runs in the page: draw.js on a canvas of its own. Two I420 frames that
// differ in one small rectangle; the second must be drawn as a box, and the
// canvas must then equal a full drawImage of it (conversion rounding aside).
// Then a frame whose lower half changed: past a quarter of the picture, the
// comparison stops and the frame is drawn whole.
async function drawBoxes() {
	const W = 640, H = 360;
	const frameOf = (changed, ts) => {
		const buf = new Uint8Array(W * H * 3 / 2);
		for (let y = 0; y < H; y++)
			for (let x = 0; x < W; x++)
				buf[y * W + x] = (x * 3 + y * 5) & 255;
		buf.fill(90, W * H, W * H + W * H / 4);
		buf.fill(170, W * H + W * H / 4);
		if (changed === 'half')
			buf.fill(20, (H >> 1) * W, H * W);
		else if (changed) // a "glyph": 10x14 luma pixels and their chroma
			for (let y = 101; y < 115; y++) {
				buf.fill(250, y * W + 203, y * W + 213);
				buf[W * H + (y >> 1) * (W / 2) + 104] = 30;
			}
		return new VideoFrame(buf, { format: 'I420', codedWidth: W, codedHeight: H,
					     timestamp: ts });
	};
	const canvas = () => {
		const c = document.createElement('canvas');
		return c.getContext('2d', { alpha: false });
	};
	const ctx = canvas();
	const first = await window.hfeDraw.frame(ctx, frameOf(false, 1));
	const second = await window.hfeDraw.frame(ctx, frameOf(true, 2));
	const again = await window.hfeDraw.frame(ctx, frameOf(true, 3));
	const pixelsOff = async (changed, ts) => { // ctx against a first frame drawn whole
		const ref = canvas();
		await window.hfeDraw.frame(ref, frameOf(changed, ts));
		const a = ctx.getImageData(0, 0, W, H).data, b = ref.getImageData(0, 0, W, H).data;
		let off = 0;
		for (let i = 0; i < a.length; i++)
			off += Math.abs(a[i] - b[i]) > 3;
		return off;
	};
	const off = await pixelsOff(true, 4);
	const half = await window.hfeDraw.frame(ctx, frameOf('half', 5));
	const halfOff = await pixelsOff('half', 6);
	return { first, second, again, off, half, halfOff };
}

async function snapshot(page, name) {
	const a = await page.evaluate(analyseCanvas);
	a.t = Date.now();
	await page.locator('#screen').screenshot({ path: path.join(out, name + '.png') });
	a.file = path.join(out, name + '.png');
	return a;
}

const stats = (page) => page.evaluate(() => ({ ...window.hfeStats }));

async function serverStats(url) {
	const r = await fetch(url + 'stats.json');
	return r.json();
}

function checkPicture(a, label) {
	check(a.w === W && a.h === H, `${label}: canvas is ${W}x${H}`, [a.w, a.h]);
	check(a.mean > 40, `${label}: picture is not black (mean luma ${a.mean.toFixed(1)})`);
	check(a.bgMatch >= 0.85,
	      `${label}: ${(a.bgMatch * 100).toFixed(0)}% of sample points show the test ` +
	      'gradient (>= 85%)');
	check(/^\d{8}$/.test(a.counter), `${label}: frame counter reads ${a.counter}`);
}

function checkClean(s, label) {
	check(s.decodeErrors === 0, `${label}: no decoder errors`, s.lastError);
	check(s.deltaBeforeKey === 0, `${label}: no delta frame before the first keyframe`,
	      s.deltaBeforeKey);
}

async function waitDecoding(page, label, minFrames = 5, timeoutMs = 15000) {
	await waitFor(`${label} to decode ${minFrames} frames`,
		      async () => (await stats(page)).framesDecoded >= minFrames, timeoutMs);
}

// Runs in the page: open a WebSocket, report whether it opened and how many
// frames came before it closed (or 3 s passed).
function tryWebSocket(wsUrl) {
	return new Promise((resolve) => {
		const ws = new WebSocket(wsUrl);
		ws.binaryType = 'arraybuffer';
		let frames = 0, opened = false;
		ws.onopen = () => { opened = true; };
		ws.onmessage = (e) => { if (typeof e.data !== 'string') frames++; };
		ws.onclose = (e) => resolve({ opened, code: e.code, frames });
		setTimeout(() => resolve({ opened, code: 'still open', frames }), 3000);
	});
}

/* ---- the test ---- */

// A self-signed certificate for ADDR, made with the openssl CLI.
function makeCert(addr) {
	const cert = path.join(work, 'cert.pem'), key = path.join(work, 'key.pem');
	execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt',
				 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key,
				 '-out', cert, '-days', '2', '-subj', '/CN=hfe-viewer browser test',
				 '-addext', `subjectAltName=IP:${addr}`], { stdio: 'ignore' });
	return { cert, key };
}

// This machine's first non-loopback IPv4 address (else loopback).
function outsideAddress() {
	for (const list of Object.values(os.networkInterfaces()))
		for (const a of list)
			if (a.family === 'IPv4' && !a.internal)
				return a.address;
	return '127.0.0.1';
}

async function checkHttps(browser) {
	const addr = outsideAddress();
	const { cert, key } = makeCert(addr);
	const tls = start('viewer-tls', VIEWER, ['--connect', 'unix:' + sock, '--scanout', '0',
						 '--http', addr + ':0', '--tls-cert', cert,
						 '--tls-key', key]);
	try {
		const url = await viewerUrl(tls);
		check(new RegExp(`^https://${addr.replace(/\./g, '\\.')}:\\d+/[A-Za-z0-9_-]{32}/$`)
		      .test(url), `the HTTPS viewer prints an https:// URL (${url})`);
		const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
		const page = await ctx.newPage();
		await page.goto(url);
		const secure = await page.evaluate(() => window.isSecureContext);
		check(secure, `https://${addr}: the page is a secure context`);
		await waitDecoding(page, 'the HTTPS page', 5, 15000);
		await sleep(300);
		checkPicture(await snapshot(page, 'https'), 'over HTTPS');
		checkClean(await stats(page), 'the HTTPS page');
		// Plain HTTP to the HTTPS port: no page, no WebSocket.
		const plain = url.replace('https:', 'http:');
		let served = null;
		try {
			const resp = await page.goto(plain);
			served = resp.status();
		} catch (e) {
			served = String(e.message).split('\n')[0];
		}
		check(typeof served === 'string',
		      `plain HTTP to the HTTPS port gets no answer (${served})`);
		await ctx.close();
	} finally {
		const r = await stop(tls);
		check(r.code === 0, 'the HTTPS viewer exits 0', r);
	}
}

// A viewer restarted on the same port: with a new token the open page is
// refused and says so; with the old one (HFE_VIEWER_TOKEN) it plays again.
async function checkViewerRestart(browser) {
	const tokenA = 'restart-token-' + 'a'.repeat(20);
	let v = start('viewer-restart', VIEWER, ['--connect', 'unix:' + sock, '--scanout', '0',
						 '--http', '127.0.0.1:0'], { HFE_VIEWER_TOKEN: tokenA });
	const url = await viewerUrl(v);
	check(url.endsWith(`/${tokenA}/`), `HFE_VIEWER_TOKEN is the URL's token (${url})`);
	const port = new URL(url).port;
	const ctx = await browser.newContext();
	const page = await ctx.newPage();
	try {
		await page.goto(url);
		await waitDecoding(page, 'the restart page', 5, 15000);
		const restart = async (env) => {
			check((await stop(v)).code === 0, 'the restarted viewer exits 0');
			v = start('viewer-restart', VIEWER, ['--connect', 'unix:' + sock, '--scanout',
							     '0', '--http', '127.0.0.1:' + port], env);
			return viewerUrl(v);
		};
		const other = await restart({});
		check(!other.includes(tokenA), 'restarted without a token: a new random one');
		const said = await waitFor('the page to say it is refused', async () => {
			const t = await page.locator('#status').textContent();
			return /refuses this URL/.test(t) && t;
		}, 10000).catch((e) => String(e));
		check(/refuses this URL/.test(said), `the old page says so: "${said}"`);
		await restart({ HFE_VIEWER_TOKEN: tokenA });
		const d0 = (await stats(page)).framesDecoded;
		await waitFor('the page to play again',
			      async () => (await stats(page)).framesDecoded > d0 + 5, 15000);
		check(true, 'restarted with the same token: the page plays again');
	} finally {
		await ctx.close();
		check((await stop(v)).code === 0, 'the restarted viewer exits 0');
	}
}

async function main() {
	let daemon = startDaemon();
	await waitFor('the daemon socket', () => fs.existsSync(sock), 10000);

	const viewer = start('viewer', VIEWER, ['--connect', 'unix:' + sock, '--scanout', '0',
						'--http', '127.0.0.1:0', '--record', mp4]);
	const url = await viewerUrl(viewer);
	check(/^http:\/\/127\.0\.0\.1:\d+\/[A-Za-z0-9_-]{32}\/$/.test(url),
	      `viewer prints its URL with a token (${url})`);
	const origin = new URL(url).origin;
	const token = new URL(url).pathname.split('/')[1];
	const tStart = Date.now();

	const browser = await chromium.launch({
		executablePath: CHROMIUM,
		headless: true,
		args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
		       '--disable-background-networking', '--disable-component-update',
		       '--disable-sync'],
	});
	try {
		const ctx1 = await browser.newContext({ viewport: { width: 1300, height: 780 } });
		const page1 = await ctx1.newPage();
		const consoleErrors = [];
		page1.on('console', (m) => {
			if (m.type() === 'error')
				consoleErrors.push(m.text());
		});
		page1.on('pageerror', (e) => consoleErrors.push(String(e)));

		// 1. One page: pictures.
		await page1.goto(url);
		await waitDecoding(page1, 'page 1');
		let s1 = await stats(page1);
		check(s1.firstFrameMs !== null && s1.firstFrameMs < 3000,
		      `page 1: first frame ${Math.round(s1.firstFrameMs)} ms after connecting`);
		await sleep(300);
		const a = await snapshot(page1, 'page1-a');
		await sleep(1000);
		const b = await snapshot(page1, 'page1-b');
		checkPicture(a, 'shot 1');
		checkPicture(b, 'shot 2');
		// The counter is the source's frame number: it advances in real time
		// (give or take the page's backlog, at most 60 frames).
		const dc = Number(b.counter) - Number(a.counter);
		const want = (b.t - a.t) / 1000 * FPS;
		check(dc >= 1 && dc <= want + 70,
		      `counter advanced by ${dc} in ${((b.t - a.t) / 1000).toFixed(2)} s ` +
		      `(${a.counter} -> ${b.counter}; ${FPS} fps)`);
		let differ = 0;
		for (let i = 0; i < a.coarse.length; i++)
			differ += Math.abs(a.coarse[i] - b.coarse[i]) > 24;
		check(differ > 20,
		      `the two shots differ (${differ} of ${a.coarse.length} samples)`);
		check(!fs.readFileSync(a.file).equals(fs.readFileSync(b.file)),
		      'the two PNG screenshots differ');

		s1 = await stats(page1);
		checkClean(s1, 'page 1');
		check(s1.fps > 0, `page 1: fps ${s1.fps.toFixed(1)} > 0`);
		check(s1.kbps > 0, `page 1: bitrate ${s1.kbps.toFixed(0)} kbit/s > 0`);
		check(s1.width === W && s1.height === H,
		      `page 1: decoded ${s1.width}x${s1.height}`);
		check(/^avc1\.42[0-9A-F]{4}$/.test(s1.codec), `page 1: codec ${s1.codec}`);
		check(s1.latencyMs !== null && s1.latencyMs > 0 && s1.latencyMs < 2000,
		      `page 1: latency ${s1.latencyMs && s1.latencyMs.toFixed(1)} ms ` +
		      `(host ${s1.hostMs && s1.hostMs.toFixed(1)}, ` +
		      `server->decoded ${s1.viewerMs && s1.viewerMs.toFixed(1)})`);
		await page1.screenshot({ path: path.join(out, 'page1-full.png') });
		const shown = await page1.locator('#stats').textContent();
		check(/fps/.test(shown) && /Mbit\/s/.test(shown) &&
		      /latency [0-9.]+ ms/.test(shown),
		      `page shows fps, bitrate and latency: "${shown}"`);
		const db = await page1.evaluate(drawBoxes);
		check(db.first === 'full' && db.second === 'box' && db.again === 'unchanged' &&
		      db.off === 0, 'draw.js converts only the changed box, and the canvas ' +
		      'equals the whole frame drawn', db);
		check(db.half === 'full' && db.halfOff === 0, 'draw.js draws a change of half ' +
		      'the picture whole, and the canvas equals it', db);

		// 2. A second page joins mid-GOP (there is no GOP: --gop 0).
		const ctx2 = await browser.newContext();
		const page2 = await ctx2.newPage();
		const before1 = (await stats(page1)).framesDecoded;
		const upBefore1 = (await serverStats(url)).upstream.frames;
		await page2.goto(url);
		await waitDecoding(page2, 'page 2', 5, 5000);
		const s2 = await stats(page2);
		check(s2.firstFrameMs < 2000,
		      'page 2 joining mid-stream: first frame after ' +
		      `${Math.round(s2.firstFrameMs)} ms`);
		await sleep(1000);
		const up1 = (await serverStats(url)).upstream.frames - upBefore1;
		const after1 = (await stats(page1)).framesDecoded;
		check(after1 - before1 >= 0.5 * up1 && up1 > 0,
		      `page 1 keeps decoding while page 2 joins (+${after1 - before1} frames ` +
		      `of ${up1} from the host)`);
		const c2 = await snapshot(page2, 'page2');
		checkPicture(c2, 'page 2');
		checkClean(await stats(page2), 'page 2');
		checkClean(await stats(page1), 'page 1 with page 2');
		let ss = await serverStats(url);
		check(ss.viewers.length === 2, `server counts 2 viewers`, ss.viewers.length);
		check(ss.upstream.keyframe_requests >= 2,
		      `server asked for keyframes (${ss.upstream.keyframe_requests}) ` +
		      `and got ${ss.upstream.keyframes}`);

		// 3. Reload page 1.
		await page1.reload();
		await waitDecoding(page1, 'page 1 after reload', 5, 5000);
		const r1 = await stats(page1);
		check(r1.firstFrameMs < 2000,
		      `page 1 after reload: first frame after ${Math.round(r1.firstFrameMs)} ms`);
		await sleep(500);
		checkPicture(await snapshot(page1, 'page1-reloaded'), 'after reload');
		checkClean(await stats(page1), 'page 1 after reload');
		checkClean(await stats(page2), 'page 2 after page 1 reloaded');

		// 4. A client that stops acknowledging: skipped, then resynced.
		const page3 = await ctx2.newPage();
		await page3.goto(url + 'stats.json'); // same origin, no player
		await page3.evaluate((wsUrl) => new Promise((resolve, reject) => {
			const ws = new WebSocket(wsUrl);
			ws.binaryType = 'arraybuffer';
			window.raw = { ws, msgs: [] };
			ws.onmessage = (e) => {
				if (typeof e.data === 'string')
					return;
				const dv = new DataView(e.data);
				window.raw.msgs.push({ seq: dv.getUint32(4, true),
						       key: dv.getUint8(1) & 1 });
			};
			ws.onopen = resolve;
			ws.onerror = reject;
		}), url.replace('http:', 'ws:') + 'ws');
		const p1before = (await stats(page1)).framesDecoded;
		const upBefore = (await serverStats(url)).upstream.frames;
		const silent = async () => {
			const st = await serverStats(url);
			const newest = Math.max(...st.viewers.map((x) => x.id));
			return st.viewers.find((v) => v.id === newest);
		};
		// 60 frames and then some: about 3 s at 30 fps.
		await waitFor('the server to skip the silent client',
			      async () => (await silent()).frames_skipped > 15, 15000);
		const raw = await page3.evaluate(() => window.raw.msgs);
		const slow = await silent();
		const upGain = (await serverStats(url)).upstream.frames - upBefore;
		const p1gain = (await stats(page1)).framesDecoded - p1before;
		check(raw.length > 0 && raw[0].key === 1,
		      'silent client: first message is a keyframe', raw.slice(0, 2));
		check(raw.length === 60,
		      `silent client: stopped at 60 unacknowledged frames (${raw.length})`);
		check(slow && slow.frames_skipped > 0 && slow.waiting_key,
		      'server skips the silent client and waits to resync it', slow);
		// Half, as for page 2's join: a server held up by the silent client
		// gives page 1 nothing; a loaded machine's Chromium decodes 60-70 %.
		check(p1gain >= 0.5 * upGain,
		      `page 1 unaffected meanwhile (+${p1gain} frames of ${upGain} from the host)`);
		const n0 = raw.length;
		await page3.evaluate((seq) => window.raw.ws.send('ack ' + seq),
				     raw[raw.length - 1].seq);
		await sleep(1500);
		const raw2 = await page3.evaluate(() => window.raw.msgs);
		check(raw2.length > n0 && raw2[n0].key === 1,
		      'silent client, after acknowledging: resumed with a keyframe',
		      raw2.slice(n0, n0 + 2));
		await page3.close();

		// 5. Without the token nothing is served: not the page, not the
		// stats, not the WebSocket (the handshake is refused, so it never
		// opens). A wrong token is no better.
		const refused0 = (await serverStats(url)).refused;
		const page5 = await ctx2.newPage();
		const wrong = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
		for (const p of ['/', '/stats.json', '/viewer.js', `/${wrong}/`,
				 `/${wrong}/stats.json`]) {
			const resp = await page5.goto(origin + p);
			const body = await resp.text();
			check(resp.status() === 403 && !/canvas|upstream/.test(body),
			      `${p === '/' || !p.includes(wrong) ? p : p.replace(wrong, 'WRONG')}: ` +
			      `refused (${resp.status()})`);
		}
		for (const p of ['/ws', `/${wrong}/ws`]) {
			const r = await page5.evaluate(tryWebSocket, origin.replace('http:', 'ws:') + p);
			check(!r.opened && r.frames === 0,
			      `a WebSocket at ${p.replace(wrong, 'WRONG')} never opens, no frames`, r);
		}
		await page5.close();

		// A page from another origin may not watch: the page at
		// localhost:PORT is not the origin of 127.0.0.1:PORT. Nor may a
		// request for another host name (DNS rebinding).
		const page4 = await ctx2.newPage();
		await page4.goto(url.replace('127.0.0.1', 'localhost') + 'stats.json');
		const cross = await page4.evaluate(tryWebSocket, url.replace('http:', 'ws:') + 'ws');
		check(!cross.opened && cross.frames === 0,
		      'a page of another origin is refused its WebSocket (never opens, no frames)',
		      cross);
		await page4.close();
		const refused = (await serverStats(url)).refused - refused0;
		check(refused >= 8, `the viewer counted the refusals (${refused})`);
		const status = await new Promise((resolve, reject) => {
			const u = new URL(url);
			http.get({ host: u.hostname, port: u.port, path: u.pathname,
				   headers: { Host: 'rebound.example:' + u.port } },
				 (res) => {
					 res.resume();
					 resolve(res.statusCode);
				 }).on('error', reject);
		});
		check(status === 403, `a request for host rebound.example is refused (${status})`);

		// 5b. HTTPS on an address other than loopback: a secure context
		// there only over TLS, and the page plays.
		await checkHttps(browser);
		await checkViewerRestart(browser);

		// 6. The daemon restarts: the viewer reconnects, the pages resume.
		const r = await stop(daemon);
		check(r.code === 0, 'daemon stopped', r);
		daemon = startDaemon();
		const d0 = (await stats(page1)).framesDecoded;
		await waitFor('page 1 to decode after the daemon restarted',
			      async () => (await stats(page1)).framesDecoded > d0 + 10, 10000);
		checkClean(await stats(page1), 'page 1 after the daemon restarted');
		checkPicture(await snapshot(page1, 'page1-restarted'),
			     'after the daemon restarted');
		check(/lost the host/.test(viewer.stderrText) &&
		      (viewer.stderrText.match(/subscribed to scanout 0/g) || []).length === 2,
		      'viewer logged the loss and the new subscription');

		check(consoleErrors.length === 0, 'no errors in page 1\'s console', consoleErrors);
		await ctx2.close();
		await ctx1.close();
	} finally {
		await browser.close();
	}

	// 7. Ctrl-C: the MP4 is finished.
	await waitFor('the viewer to see the pages go',
		      async () => (await serverStats(url)).viewers.length === 0, 5000);
	const elapsed = (Date.now() - tStart) / 1000;
	const vr = await stop(viewer);
	check(vr.code === 0, 'viewer exits 0 on Ctrl-C', vr);
	const m = /wrote (\d+) frames \(([0-9.]+) s, (\d+)x(\d+), \d+ bytes\) to (\S+)/
		.exec(viewer.stderrText);
	check(m && m[5] === mp4, `viewer says where the MP4 is (${m && m[5]})`);
	const dr = await stop(daemon);
	check(dr.code === 0, 'daemon exits 0', dr);

	if (m) {
		const frames = Number(m[1]);
		const probe = JSON.parse(execFileSync('ffprobe', [
			'-v', 'error', '-count_frames', '-select_streams', 'v:0',
			'-show_entries', 'stream=codec_name,width,height,nb_read_frames,duration',
			'-of', 'json', mp4]));
		const st = probe.streams[0];
		console.log(`     ffprobe: ${JSON.stringify(st)}; ` +
			    `recorded ${elapsed.toFixed(1)} s`);
		check(st.codec_name === 'h264' && st.width === W && st.height === H,
		      `MP4 is H.264 ${W}x${H}`);
		check(Number(st.nb_read_frames) === frames,
		      `ffprobe decodes all ${frames} frames the viewer wrote ` +
		      `(${st.nb_read_frames})`);
		// Less than real time: the daemon was down for a moment.
		check(frames > elapsed * FPS * 0.5 && frames < (elapsed + 2) * FPS * 1.1,
		      `frame count plausible for ${elapsed.toFixed(1)} s at ${FPS} fps ` +
		      `(${frames})`);
		check(Math.abs(Number(st.duration) - elapsed) < elapsed * 0.3 + 1,
		      `MP4 duration ${Number(st.duration).toFixed(1)} s ~ ${elapsed.toFixed(1)} s`);
	}
}

await runTest(main, `screenshots: ${out}`);
