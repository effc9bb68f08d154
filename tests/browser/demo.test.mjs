// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The README's main command, as a person runs it: scripts/demo.sh boots the
 * VM, attaches the daemon, runs the guest's subscriber and hfe-viewer; this
 * opens the printed URL in Chromium (Playwright) and checks:
 *  - the printed URL carries the viewer's token (without it: 403);
 *  - the canvas shows the VM's screen: 1024x768, not black, the demo's blue
 *    title bar and text at the top, the colour bars of the guest's pattern at
 *    the bottom; two shots 3 s apart differ (pattern and clock move);
 *  - no decoder errors, no delta frame before the first keyframe;
 *  - the guest received its own screen back (subscriber fps > 0 on its console);
 *  - after the demo's --duration it exits 0, the MP4 passes ffprobe with a
 *    plausible frame count, and none of its processes are left.
 * Screenshots: $HFE_BROWSER_OUT/demo-1.png, demo-2.png.
 */
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { CHROMIUM, check, chromium, runTest, sleep, waitFor } from './lib.mjs';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const OUT = process.env.HFE_BROWSER_OUT || '/tmp/hfe-browser-demo';
const DEMO_OUT = path.join(OUT, 'demo-out');
const DURATION = 25; // s of streaming after the guest's first access unit
const W = 1024, H = 768;

// Runs in the page: what the VM's screen looks like on the canvas.
function analyseCanvas() {
	const c = document.getElementById('screen');
	const w = c.width, h = c.height;
	const d = c.getContext('2d').getImageData(0, 0, w, h).data;
	const px = (x, y) => { const i = (y * w + x) * 4; return [d[i], d[i + 1], d[i + 2]]; };
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
	// Title bar: row 0 of the text, white on blue (fbcon colour 4).
	let blue = 0, blueN = 0;
	for (let x = 4; x < 480; x += 6) {
		const p = px(x, 1);
		blueN++;
		if (p[2] > 120 && p[0] < 80 && p[1] < 80)
			blue++;
	}
	// Text area (rows 5..): dark background with some bright glyph pixels.
	let text = 0, textN = 0, textSum = 0;
	for (let y = 80; y < 390; y += 3)
		for (let x = 0; x < 700; x += 3) {
			const l = luma(px(x, y));
			textN++;
			textSum += l;
			if (l > 120)
				text++;
		}
	// Pattern band: its colour bars, quantised (the box may hide one).
	const colours = new Set();
	for (let x = 8; x < w; x += 16) {
		const p = px(x, h - 40);
		colours.add(p.map((v) => Math.round(v / 64)).join(','));
	}
	// The clock line (text row 2), every pixel: its digits change each second.
	const clock = [];
	for (let y = 16; y < 32; y++)
		for (let x = 0; x < 480; x++)
			clock.push(Math.round(luma(px(x, y))));
	return { w, h, mean: sum / n, blue: blue / blueN, textFrac: text / textN,
		 textMean: textSum / textN, colours: colours.size, coarse, clock };
}

function diff(a, b, y0, y1) {
	// Mean absolute luma difference of the coarse grid between rows y0..y1.
	const cols = Math.ceil((W - 2) / 8);
	let s = 0, n = 0;
	for (let i = 0; i < a.coarse.length; i++) {
		const y = 2 + Math.floor(i / cols) * 8;
		if (y >= y0 && y < y1) {
			s += Math.abs(a.coarse[i] - b.coarse[i]);
			n++;
		}
	}
	return n ? s / n : 0;
}

function processesMentioning(needle) {
	const found = [];
	for (const e of fs.readdirSync('/proc')) {
		if (!/^\d+$/.test(e) || Number(e) === process.pid)
			continue;
		try {
			const cmd = fs.readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ');
			if (cmd.includes(needle))
				found.push(`${e}: ${cmd.slice(0, 160)}`);
		} catch { /* gone */ }
	}
	return found;
}

async function main() {
	fs.mkdirSync(OUT, { recursive: true });
	fs.rmSync(DEMO_OUT, { recursive: true, force: true });
	const t0 = Date.now();
	const demo = spawn('bash', [path.join(ROOT, 'scripts/demo.sh'), '--headless',
				    '--duration', String(DURATION), '--port', '0'],
			   { detached: true, stdio: ['ignore', 'pipe', 'pipe'],
			     env: { ...process.env, HFE_DEMO_OUT: DEMO_OUT } });
	let text = '';
	demo.stdout.on('data', (d) => { text += d; process.stdout.write('     demo: ' + d); });
	demo.stderr.on('data', (d) => { text += d; process.stdout.write('     demo: ' + d); });
	const exited = new Promise((resolve) => demo.on('exit', (code, sig) => resolve({ code, sig })));
	let done = null;
	exited.then((r) => { done = r; });

	try {
		const url = await waitFor('the viewer URL', () => {
			if (done)
				throw new Error(`demo.sh exited early: ${JSON.stringify(done)}`);
			const m = /open (http:\/\/127\.0\.0\.1:\d+\/[A-Za-z0-9_-]{32}\/) in a browser/
				.exec(text);
			return m && m[1];
		}, 300000);
		const tUrl = Date.now();
		const runDir = /--qemu qmp:unix:(\/tmp\/hfe-demo\.[^/]+)\//.exec(text);
		check(runDir, 'demo.sh names its run directory');

		const browser = await chromium.launch({
			executablePath: CHROMIUM, headless: true,
			args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			       '--disable-background-networking', '--disable-component-update',
			       '--disable-sync'],
		});
		try {
			const page = await (await browser.newContext({
				viewport: { width: 1100, height: 860 } })).newPage();
			const errors = [];
			page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
			page.on('pageerror', (e) => errors.push(String(e)));
			await page.goto(url);
			const stats = () => page.evaluate(() => ({ ...window.hfeStats }));
			await waitFor('the page to decode frames', async () => {
				if (done)
					throw new Error(`demo.sh exited: ${JSON.stringify(done)}`);
				return (await stats()).framesDecoded >= 5;
			}, 240000);
			const tFirst = Date.now();
			const bare = await fetch(new URL(url).origin + '/');
			check(bare.status === 403, `the demo's viewer wants the URL's token ` +
			      `(without it: ${bare.status})`);
			console.log(`     timing: URL printed ${((tUrl - t0) / 1000).toFixed(1)} s after ` +
				    `start; first frames decoded in the browser ` +
				    `${((tFirst - t0) / 1000).toFixed(1)} s after start ` +
				    `(${((tFirst - tUrl) / 1000).toFixed(1)} s after the page opened)`);
			await sleep(2000);
			const a = await page.evaluate(analyseCanvas);
			await page.locator('#screen').screenshot({ path: path.join(OUT, 'demo-1.png') });
			await sleep(3000);
			const b = await page.evaluate(analyseCanvas);
			await page.locator('#screen').screenshot({ path: path.join(OUT, 'demo-2.png') });
			await page.screenshot({ path: path.join(OUT, 'demo-page.png') });

			for (const [s, label] of [[a, 'shot 1'], [b, 'shot 2']]) {
				check(s.w === W && s.h === H, `${label}: canvas is the VM's ${W}x${H}`,
				      [s.w, s.h]);
				check(s.mean > 30, `${label}: not black (mean luma ${s.mean.toFixed(1)})`);
				check(s.blue > 0.8, `${label}: the demo's blue title bar ` +
				      `(${(s.blue * 100).toFixed(0)}%)`);
				check(s.textFrac > 0.005 && s.textMean < 80,
				      `${label}: console text on black (${(s.textFrac * 100).toFixed(1)}% ` +
				      `bright, mean ${s.textMean.toFixed(1)})`);
				check(s.colours >= 5, `${label}: the guest's colour bars (${s.colours} colours)`);
			}
			const dPattern = diff(a, b, 400, H);
			const dClock = a.clock.filter((v, i) => Math.abs(v - b.clock[i]) > 60).length;
			check(dPattern > 5, `the pattern moved between the shots (${dPattern.toFixed(1)})`);
			check(dClock > 20, `the clock line changed between the shots (${dClock} pixels)`);
			const s = await stats();
			check(s.decodeErrors === 0, 'no decoder errors', s.lastError);
			check(s.deltaBeforeKey === 0, 'no delta frame before the first keyframe');
			check(errors.length === 0, 'no errors on the page console', errors);
			console.log(`     page: ${s.framesDecoded} frames decoded, fps ${s.fps}, ` +
				    `first frame ${s.firstFrameMs} ms after the WebSocket opened`);
		} finally {
			await browser.close();
		}

		const r = await Promise.race([exited, sleep((DURATION + 120) * 1000).then(() => null)]);
		check(r && r.code === 0, `demo.sh ends by itself after --duration, exit 0`, r);
		check(/the guest receives its own screen as H\.264/.test(text) &&
		      /subscriber fps=[1-9]/.test(text), 'the guest subscriber received the stream');
		const boot = /guest up ([0-9.]+) s after QEMU started/.exec(text);
		if (boot)
			console.log(`     timing: guest up ${boot[1]} s after QEMU started`);

		const mp4 = path.join(DEMO_OUT, 'demo.mp4');
		check(fs.existsSync(mp4), `the MP4 is where demo.sh said (${mp4})`);
		const st = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-count_frames',
			'-select_streams', 'v:0', '-show_entries',
			'stream=codec_name,width,height,nb_read_frames,duration', '-of', 'json', mp4]))
			.streams[0];
		console.log(`     ffprobe: ${JSON.stringify(st)}`);
		check(st.codec_name === 'h264' && st.width === W && st.height === H,
		      `MP4 is H.264 ${W}x${H}`);
		// The guest's pattern moves at 10 fps for at least DURATION s.
		check(Number(st.nb_read_frames) >= DURATION * 5,
		      `MP4 frame count plausible (${st.nb_read_frames} >= ${DURATION * 5})`);
		// Earlier picture sizes (QEMU's 640x480 picture before the guest sets
		// its mode, when the viewer subscribes that early) are parts of their
		// own, each announced by the viewer and holding the size it names.
		const vlog = fs.readFileSync(path.join(DEMO_OUT, 'viewer.log'), 'utf8');
		const announced = [...vlog.matchAll(/the (\d+)x(\d+) part is (\S+);/g)];
		for (const [, pw, ph, file] of announced) {
			const ps = fs.existsSync(file) && JSON.parse(execFileSync('ffprobe', ['-v', 'error',
				'-select_streams', 'v:0', '-show_entries', 'stream=codec_name,width,height',
				'-of', 'json', file])).streams[0];
			check(ps && ps.codec_name === 'h264' && ps.width === Number(pw) &&
			      ps.height === Number(ph), `MP4 part ${path.basename(file)} is H.264 ${pw}x${ph}`, ps);
		}
		const parts = fs.readdirSync(DEMO_OUT).filter((f) => /^demo-\d+-\d+x\d+\.mp4$/.test(f));
		check(parts.length === announced.length,
		      `every MP4 part was announced (${parts.length} files, ${announced.length} announced)`);
		if (runDir) {
			await sleep(500);
			const left = processesMentioning(runDir[1]).concat(processesMentioning(DEMO_OUT));
			check(left.length === 0, 'no demo process is left', left);
			check(!fs.existsSync(runDir[1]), 'the run directory is removed');
		}
	} finally {
		if (!done) {
			try { process.kill(-demo.pid, 'SIGTERM'); } catch { /* gone */ }
			await Promise.race([exited, sleep(20000)]);
		}
	}
}

await runTest(main, `screenshots: ${OUT}/demo-1.png, demo-2.png, demo-page.png`);
