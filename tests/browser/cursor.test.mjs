// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Browser test of the cursor channel: the page draws the VM's cursor itself,
 * so moving it costs no access unit. The daemon serves a static test scanout
 * on a --control-listen (a pointer there shows and moves the test source's
 * hardware cursor, as a VM's display moves its cursor plane); hfe-viewer
 * --control subscribes with the cursor channel; Chromium, driven by
 * Playwright, moves the mouse over the picture. Checked:
 *  - the page gets the cursor's shape and positions and shows its overlay
 *    where the pointer is (scaled from the stream's pixels to the page);
 *  - moving the pointer brings cursor messages and no access unit (the
 *    viewer's upstream frame count and the page's do not grow);
 *  - the page moves the cursor itself at the local pointer, at once: with
 *    hfe-viewer stopped (SIGSTOP: no host position can come) it still
 *    follows the pointer, and once the viewer runs again the host's late
 *    positions along the way do not pull it back (no jump);
 *  - shapes that come back (the test source's arrow, an I-beam over its top
 *    band: arrow, beam, arrow, beam, arrow) reach the page in full once each,
 *    with an id, then as the id alone, and the page shows the right one;
 *    a page that joins later gets the current shape in full;
 *  - a second viewer with --record (its MP4 needs the cursor in the
 *    pictures) takes no cursor channel: the cursor is in its pictures.
 */
import fs from 'node:fs';
import path from 'node:path';

import { CHROMIUM, check, chromium, runTest, sleep, start, toPage, upstreamStats, viewerUrl,
	waitFor, workDirs } from './lib.mjs';

const DAEMON = process.env.HFE_DAEMON;
const VIEWER = process.env.HFE_VIEWER;
const W = 640, H = 360;

const { work, out } = workDirs('hfe-browser-cursor-');

// Where the overlay is on the page, and every place it was put since mark().
const overlay = () => {
	const r = document.getElementById('cursor').getBoundingClientRect();
	return { x: r.left, y: r.top, seen: window.__placed.slice() };
};
const mark = () => {
	window.__placed = [];
	if (!window.__watch) {
		const el = document.getElementById('cursor');
		window.__watch = new MutationObserver(() => window.__placed.push(
			[parseFloat(el.style.left), parseFloat(el.style.top)]));
		window.__watch.observe(el, { attributes: true, attributeFilter: ['style'] });
	}
};

// The cursor follows the local pointer with no host answer, and the host's
// positions, once they come, make it jump nowhere.
async function localCursor(page, viewer) {
	const near = (b, at) => Math.abs(b.x - (at.x - 0.5 * at.s)) < 2 &&
		Math.abs(b.y - (at.y - 0.5 * at.s)) < 2;
	await page.evaluate(mark);
	const pos0 = await page.evaluate(() => window.hfeCursor.state.positions);
	process.kill(viewer.pid, 'SIGSTOP');
	let at;
	try {
		for (let i = 1; i <= 5; i++) {
			at = await toPage(page, 500 - i * 40, 280 - i * 16);
			await page.mouse.move(at.x, at.y);
			await sleep(15);
		}
		const b = await page.evaluate(overlay);
		check(near(b, at) && await page.evaluate(
			() => window.hfeCursor.state.positions) === pos0,
		      'with the viewer stopped, the page\'s cursor follows the pointer by itself',
		      { b, at });
	} finally {
		process.kill(viewer.pid, 'SIGCONT');
	}
	await waitFor('the host\'s positions again', () => page.evaluate(
		(n) => window.hfeCursor.state.positions > n, pos0), 10000);
	await page.evaluate(mark);
	await sleep(1500); // the late positions, and the cursor settling on the last
	const b = await page.evaluate(overlay);
	check(near(b, at) && b.seen.every(([x, y]) => Math.abs(x - b.x) < 1 && Math.abs(y - b.y) < 1),
	      'the host\'s late positions move the cursor nowhere', { b, at });
	return { x: 500 - 5 * 40, y: 280 - 5 * 16 };
}

// The page's WebSocket, as received: each shape message, full or by id.
function shapeMessages(page) {
	const got = [];
	page.on('websocket', (ws) => ws.on('framereceived', ({ payload }) => {
		if (typeof payload !== 'string')
			return;
		const m = JSON.parse(payload);
		if (m.type === 'cursor' && m.shape)
			got.push({ full: m.shape.id, w: m.shape.width, h: m.shape.height,
				   bytes: payload.length });
		else if (m.type === 'cursor' && 'shape_id' in m)
			got.push({ ref: m.shape_id, bytes: payload.length });
	}));
	return got;
}

const ARROW = { w: 12, h: 19 }, BEAM = { w: 9, h: 17 }; // lib/src/testsrc.c

// Shapes come back: each reaches the page in full once, then by its id.
async function shapesOnce(browser, page, url, got, end) {
	const up0 = await upstreamStats(url);
	const path = [[300, 10, BEAM], [300, 200, ARROW], [200, 12, BEAM], [end.x, end.y, ARROW]];
	for (const [x, y, want] of path) {
		const p = await toPage(page, x, y);
		await page.mouse.move(p.x, p.y);
		const shown = await waitFor(`the ${want === BEAM ? 'I-beam' : 'arrow'} at ${x},${y}`,
					    () => page.evaluate(([w, h]) => {
			const s = window.hfeCursor.state;
			return s.width === w && s.height === h ? s.shapeId : null;
		}, [want.w, want.h]), 10000).catch(() => null);
		const full = got.find((m) => m.w === want.w && m.h === want.h);
		check(shown !== null && full && shown === full.full,
		      `the page shows the ${want === BEAM ? 'I-beam' : 'arrow'} (id ${shown})`, got);
	}
	await waitFor('the viewer\'s shape count', async () =>
		(await upstreamStats(url)).cursor_shapes >= up0.cursor_shapes + path.length, 10000);
	const fulls = got.filter((m) => 'full' in m), refs = got.filter((m) => 'ref' in m);
	const ids = new Set(fulls.map((m) => m.full));
	check(fulls.length === 2 && ids.size === 2 && refs.length >= path.length - 1 &&
	      refs.every((m) => ids.has(m.ref)),
	      `each shape was sent in full once (${fulls.length} full, ${refs.length} by id)`, got);
	const up = await upstreamStats(url);
	check(up.cursor_shapes_sent_full === 2 &&
	      up.cursor_shapes_sent_full + up.cursor_shapes_sent_ref === up.cursor_shapes,
	      'the viewer counts 2 shapes sent in full, the rest by id', up);
	check(await page.evaluate(() => window.hfeCursor.state.unknownRefs === 0),
	      'the page knew every id it was sent');
	const bytes = (l) => l.reduce((n, m) => n + m.bytes, 0);
	console.log(`shape messages: ${fulls.length} full (${bytes(fulls)} B), ` +
		    `${refs.length} by id (${bytes(refs)} B)`);

	// A page that joins now gets the current shape (the arrow) in full.
	const late = await browser.newPage({ viewport: { width: 1000, height: 700 } });
	const lateGot = shapeMessages(late);
	await late.goto(url);
	await waitFor('the late page\'s arrow', () => late.evaluate(([w, h]) =>
		window.hfeCursor.state.width === w && window.hfeCursor.state.height === h,
	[ARROW.w, ARROW.h]), 10000);
	check(lateGot.length === 1 && lateGot[0].w === ARROW.w && lateGot[0].full > 0,
	      'a page that joins later gets the current shape in full', lateGot);
	await late.close();
}

async function main() {
	const ctl = path.join(work, 'ctl.sock');
	start('daemon', DAEMON, ['--test-scanout', `0:${W}x${H}@0`, '--gop', '0',
				 '--control-listen', 'unix:' + ctl]);
	await waitFor('the daemon', () => fs.existsSync(ctl), 10000);
	const viewer = start('viewer', VIEWER, ['--connect', 'unix:' + ctl, '--scanout', '0',
						'--http', '127.0.0.1:0', '--control']);
	const url = await viewerUrl(viewer);

	const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
	const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
	const shapesGot = shapeMessages(page);
	await page.goto(url);
	await waitFor('a decoded picture with input on', () => page.evaluate(
		() => window.hfeStats.framesDecoded > 0 && window.hfeStats.input), 30000);
	check((await upstreamStats(url)).cursor, 'the viewer took the cursor channel');

	// The first move defines the cursor: shape, then position.
	let p = await toPage(page, 100, 80);
	await page.mouse.move(p.x, p.y);
	await waitFor('the cursor shape and a position', () => page.evaluate(
		() => window.hfeCursor.state.shapes > 0 && window.hfeCursor.state.visible), 10000);
	await sleep(500); // the stream settles
	const frames0 = (await upstreamStats(url)).frames;
	const pageFrames0 = await page.evaluate(() => window.hfeStats.framesReceived);
	const pos0 = await page.evaluate(() => window.hfeCursor.state.positions);

	// A path across the picture, as a person would move the mouse.
	const steps = 40;
	for (let i = 1; i <= steps; i++) {
		p = await toPage(page, 100 + i * 10, 80 + i * 5);
		await page.mouse.move(p.x, p.y);
		await sleep(15);
	}
	const want = { x: 100 + steps * 10, y: 80 + steps * 5 };
	const last = await waitFor('the cursor at the last position', () => page.evaluate(
		([x, y]) => {
			const s = window.hfeCursor.state;
			return s.x === x && s.y === y ? { ...s } : null;
		}, [want.x, want.y]), 10000).catch(() => null);
	check(last !== null, `the cursor followed the pointer to ${want.x},${want.y}`,
	      await page.evaluate(() => window.hfeCursor.state));
	const pos1 = await page.evaluate(() => window.hfeCursor.state.positions);
	check(pos1 - pos0 >= 5, `cursor positions arrived while moving (${pos1 - pos0})`);

	// The overlay is where the pointer is, drawn at the page's scale.
	const box = await page.evaluate(() => {
		const r = document.getElementById('cursor').getBoundingClientRect();
		const shown = getComputedStyle(document.getElementById('cursor')).display;
		return { x: r.left, y: r.top, w: r.width, shown };
	});
	const at = await toPage(page, want.x, want.y);
	check(box.shown === 'block' && Math.abs(box.x - (at.x - 0.5 * at.s)) < 2 &&
	      Math.abs(box.y - (at.y - 0.5 * at.s)) < 2,
	      'the page draws the cursor under the pointer', { box, at });
	check(await page.evaluate(() => document.getElementById('screen').style.cursor === 'none'),
	      'the local pointer is hidden over the picture while the VM\'s is shown');

	await sleep(300);
	const frames1 = (await upstreamStats(url)).frames;
	const pageFrames1 = await page.evaluate(() => window.hfeStats.framesReceived);
	check(frames1 === frames0 && pageFrames1 === pageFrames0,
	      'moving the cursor brought no access unit', { frames0, frames1, pageFrames0,
							    pageFrames1 });
	await page.screenshot({ path: path.join(out, 'cursor.png') });
	const end = await localCursor(page, viewer); // the pointer is there now
	await shapesOnce(browser, page, url, shapesGot, end); // and back there, the arrow

	// A recording viewer keeps the cursor in the pictures (no channel): with it
	// watching too, the stream draws the cursor, and its page gets no messages.
	const mp4 = path.join(work, 'rec.mp4');
	const rec = start('viewer-rec', VIEWER, ['--connect', 'unix:' + ctl, '--scanout', '0',
						 '--http', '127.0.0.1:0', '--record', mp4]);
	const recUrl = await viewerUrl(rec);
	const page2 = await browser.newPage({ viewport: { width: 1000, height: 700 } });
	await page2.goto(recUrl);
	await waitFor('the recording viewer\'s picture', () => page2.evaluate(
		() => window.hfeStats.framesDecoded > 0), 30000);
	check(!(await upstreamStats(recUrl)).cursor, 'a recording viewer takes no cursor channel');
	// The arrow (white, black edge, tip at the cursor's position) in its picture.
	const lit = await waitFor('the cursor in the recorded stream\'s picture', () =>
		page2.evaluate(([x, y]) => {
			const c = document.getElementById('screen');
			const d = c.getContext('2d').getImageData(x + 2, y + 8, 1, 1).data;
			return d[0] > 230 && d[1] > 230 && d[2] > 230 ? Array.from(d) : null;
		}, [end.x, end.y]), 10000).catch(() => null);
	check(lit !== null, 'the cursor is composited into the pictures of a recording viewer');
	check(await page.evaluate(([x, y]) => {
		const d = document.getElementById('screen').getContext('2d')
			.getImageData(x + 2, y + 8, 1, 1).data;
		return !(d[0] > 230 && d[1] > 230 && d[2] > 230);
	}, [end.x, end.y]) || (await upstreamStats(url)).frames > frames1,
	      'the channel page\'s own picture had no cursor in it before');
	check(await page2.evaluate(() => window.hfeCursor.state.shapes === 0),
	      'the recording viewer\'s page got no cursor messages');
	await page2.screenshot({ path: path.join(out, 'cursor-composited.png') });

	const s = await page.evaluate(() => ({ ...window.hfeStats }));
	check(s.decodeErrors === 0, 'no decoder errors', s.lastError);
	await browser.close();
}

await runTest(main);
