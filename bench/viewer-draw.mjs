// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The page's draw, alone (bench/README.md, "The page's draw"): draw.js on a
 * canvas in headless Chromium, fed I420 frames made in the page, timed from
 * hfeDraw.frame() to its promise. Three changes per size: a glyph (a box
 * draw), the lower half (a scroll's share: past the quarter, a full draw) and
 * every pixel (a new picture); beside them, in the same run, a plain
 * drawImage of the same frames (what a full draw costs at least). --draw
 * takes several draw.js (e.g. the tree's and an older one), measured in
 * turns in the same run (--rounds: how many turns each).
 *
 *   run.sh ../../bench/viewer-draw.mjs [--sizes 1280x800,1920x1080] [--frames 40]
 *          [--rounds 2] [--draw tools/viewer/draw.js[,OTHER.js...]]
 */
import path from 'node:path';

import { CHROMIUM, chromium } from '../tests/browser/lib.mjs';

const HERE = path.dirname(new URL(import.meta.url).pathname);

function option(name, def) {
	const i = process.argv.indexOf('--' + name);
	return i > 0 ? process.argv[i + 1] : def;
}
const SIZES = option('sizes', '1280x800,1920x1080').split(',');
const FRAMES = Number(option('frames', '40'));
const ROUNDS = Number(option('rounds', '2'));
const DRAWS = option('draw', path.join(HERE, '..', 'tools', 'viewer', 'draw.js')).split(',')
	.map((f) => path.resolve(f));

// Runs in the page: per change, FRAMES draws timed (ms each, sorted) and how
// draw.js drew them.
async function measure([w, h, frames]) {
	const base = new Uint8Array(w * h * 3 / 2);
	for (let y = 0; y < h; y++)
		for (let x = 0; x < w; x++)
			base[y * w + x] = (x * 3 + y * 5) & 255;
	base.fill(90, w * h, w * h * 5 / 4);
	base.fill(170, w * h * 5 / 4);
	// frame k of a change: the base with the changed part's luma set to
	// a value of k's (every changed pixel differs from the frame before)
	const changes = {
		glyph: [w >> 1, h >> 1, 10, 14],
		half: [0, h >> 1, w, h >> 1],
		all: [0, 0, w, h],
	};
	const frameOf = (rect, k) => {
		const buf = base.slice();
		const [x0, y0, rw, rh] = rect;
		for (let y = y0; y < y0 + rh; y++)
			buf.fill(40 + (k & 1) * 150, y * w + x0, y * w + x0 + rw);
		return new VideoFrame(buf, { format: 'I420', codedWidth: w, codedHeight: h,
					     timestamp: k });
	};
	const result = {};
	for (const [name, rect] of Object.entries(changes)) {
		const ctx = document.createElement('canvas').getContext('2d', { alpha: false });
		const plain = document.createElement('canvas').getContext('2d', { alpha: false });
		plain.canvas.width = w;
		plain.canvas.height = h;
		await window.hfeDraw.frame(ctx, frameOf(rect, 0)); // the first: drawn whole
		const times = [], js = [], ref = [], how = {};
		for (let k = 1; k <= frames; k++) {
			const f = frameOf(rect, k);
			const t0 = performance.now();
			const kind = await window.hfeDraw.frame(ctx, f);
			js.push(performance.now() - t0);
			ctx.getImageData(0, 0, 1, 1); // a deferred draw is done
			times.push(performance.now() - t0);
			how[kind] = (how[kind] || 0) + 1;
		}
		for (let k = 1; k <= frames; k++) {
			const g = frameOf(rect, k);
			const t1 = performance.now();
			plain.drawImage(g, 0, 0, w, h);
			plain.getImageData(0, 0, 1, 1);
			ref.push(performance.now() - t1);
			g.close();
		}
		result[name] = { times, js, ref, how };
	}
	return result;
}

const pct = (s, q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
try {
	const pages = [];
	for (const file of DRAWS) { // a page of its own per draw.js
		const page = await browser.newPage();
		await page.setContent('<!doctype html><title>draw</title>');
		await page.addScriptTag({ path: file });
		pages.push(page);
	}
	console.log(`${FRAMES} frames per change, ${ROUNDS} rounds; ms from hfeDraw.frame() ` +
		    'to drawn (a 1-pixel read after it: a deferred draw is done) and to its ' +
		    'promise (the copy, the comparison, the calls), p50 / p90; drawImage alone beside it');
	console.log('| size | change | draw.js | drawn p50 / p90 | promise p50 / p90 | drawn as | ' +
		    'drawImage p50 / p90 |');
	console.log('|---|---|---|---|---|---|---|');
	for (const size of SIZES) {
		const [w, h] = size.split('x').map(Number);
		const acc = DRAWS.map(() => ({}));
		for (let round = 0; round < ROUNDS; round++)
			for (let i = 0; i < DRAWS.length; i++) {
				const r = await pages[i].evaluate(measure, [w, h, FRAMES]);
				for (const [name, m] of Object.entries(r)) {
					const a = acc[i][name] ||= { times: [], js: [], ref: [], how: {} };
					a.times.push(...m.times);
					a.js.push(...m.js);
					a.ref.push(...m.ref);
					for (const [k, n] of Object.entries(m.how))
						a.how[k] = (a.how[k] || 0) + n;
				}
			}
		for (const name of Object.keys(acc[0]))
			for (let i = 0; i < DRAWS.length; i++) {
				const { times, js, ref, how } = acc[i][name];
				times.sort((a, b) => a - b);
				js.sort((a, b) => a - b);
				ref.sort((a, b) => a - b);
				console.log(`| ${size} | ${name} | ${path.basename(DRAWS[i])} | ` +
					    `${pct(times, 0.5).toFixed(1)} / ${pct(times, 0.9).toFixed(1)} | ` +
					    `${pct(js, 0.5).toFixed(1)} / ${pct(js, 0.9).toFixed(1)} | ` +
					    `${JSON.stringify(how)} | ` +
					    `${pct(ref, 0.5).toFixed(1)} / ${pct(ref, 0.9).toFixed(1)} |`);
			}
	}
} finally {
	await browser.close();
}
