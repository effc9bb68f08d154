// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The desktop in the browser, used through the page only (issue 13). The
 * desktop guest (tests/e2e/build-desktop-image.sh: Debian 12, weston with its
 * desktop shell, weston-terminal) boots with virtio-keyboard-pci and
 * virtio-tablet-pci; hfe-viewer --control --replug (size follows the page)
 * serves it; Chromium (Playwright) opens the page. One VM boot per host path:
 *   --host dbus    stock QEMU, -display dbus, 2D virtio-gpu-pci, the daemon's
 *                  --control-listen
 *   --host module  the patched QEMU (qemu/build.sh), virtio-gpu-gl-pci (virgl)
 *                  under -display helix, the object's control-listen=
 * The page that follows the size is opened once the shell's background shows
 * (desktop.mjs waitShell: a replug while weston 10's shell starts can kill
 * the shell, and weston quits).
 * Checked:
 *  - weston took the virtio keyboard and the tablet (its log on the console);
 *  - size follows the page: the decoded stream is the page's picture area
 *    (rounded down to 8) and weston's log shows that mode as current; after
 *    the page is resized, both follow again; the terminal window survives;
 *  - click into the terminal, type a shell command: the guest runs it (the
 *    serial console gets a product the test computed, which the typed text
 *    does not contain; up to 3 attempts, see runMarked) and new glyphs
 *    appear in the terminal's region of the decoded picture (its bright
 *    pixels grow: that is what is checked of the text, not the characters);
 *  - a click on the panel's terminal launcher (an absolute position) opens a
 *    second terminal, which has the focus: a command typed next reports the
 *    second pseudo-terminal;
 *  - the wheel scrolls the terminal: after `seq`, wheel notches up change its
 *    region of the picture, and back down restore it;
 *  - moving the pointer across the desktop: on the module path (weston's GL
 *    renderer uses virtio-gpu's cursor plane) the guest's hardware cursor
 *    comes as cursor messages (the page draws it) and no more access units
 *    than in as long a time with the pointer still (weston re-commits its
 *    whole unchanged primary plane at each move: the stream must see that
 *    nothing changed); on the D-Bus path (2D, weston's pixman renderer,
 *    which has no cursor plane) the pointer is drawn into the picture.
 * Screenshots: $HFE_BROWSER_OUT/desktop-HOST-*.png.
 */
import path from 'node:path';

import { bootDesktop, findTerminal, gridDiff, openTerminal, analyse, stable, toPage, typeKeys,
	waitShell } from './desktop.mjs';
import { CHROMIUM, check, chromium, runTest, sleep, start, upstreamStats, viewerUrl, waitFor,
	workDirs } from './lib.mjs';

const host = process.argv.includes('--host') ? process.argv[process.argv.indexOf('--host') + 1]
	: 'dbus';
if (host !== 'dbus' && host !== 'module') {
	console.log('usage: desktop.test.mjs --host dbus|module');
	process.exit(2);
}
const VIEWER = process.env.HFE_VIEWER;
const { work, out } = workDirs('hfe-browser-desktop-');
const consoleLog = path.join(out, `desktop-${host}-console.log`);
const shot = (name) => path.join(out, `desktop-${host}-${name}.png`);
let vm; // bootDesktop's

// Types `echo HFE-MARK-$((A*B)) $(tty) >/dev/ttyS0` and waits for the guest's
// shell to print the product on the serial console: { tty, tries, product },
// tty null if it never did. Up to 3 attempts, each with a fresh A after
// Ctrl+U (clears the line): under heavy load the guest sometimes sees a key's
// release late and its own key repeat doubles the key (seen: "$$$(tty)"),
// which the page cannot prevent.
async function runMarked(page, b) {
	for (let tries = 1; tries <= 3; tries++) {
		const a = 100 + Math.floor(Math.random() * 800);
		await page.keyboard.down('ControlLeft');
		await page.keyboard.press('KeyU');
		await page.keyboard.up('ControlLeft');
		await sleep(300);
		await typeKeys(page, `echo HFE-MARK-$((${a}*${b})) $(tty) >/dev/ttyS0\n`);
		const tty = await waitFor('the marker on the serial console', () => {
			const m = new RegExp(`HFE-MARK-${a * b} (/dev/pts/\\d+)`).exec(vm.consoleText());
			return m && m[1];
		}, 40000).catch(() => null);
		if (tty)
			return { tty, tries, product: a * b };
	}
	return { tty: null, tries: 3 };
}

// The picture area's size as the viewer asks for it.
async function pageSize(page) {
	const s = await page.evaluate(() => {
		const c = document.getElementById('screen');
		return { w: Math.round(c.clientWidth), h: Math.round(c.clientHeight) };
	});
	return `${s.w - s.w % 8}x${s.h - s.h % 8}`;
}

async function followsPage(page, label) {
	const want = await pageSize(page);
	const got = await waitFor(`the stream at ${want}`, () => page.evaluate((wsz) => {
		const s = window.hfeStats;
		return s.width + 'x' + s.height === wsz && s.framesDecoded > 0;
	}, want), 90000).then(() => want).catch(() => null);
	const st = await page.evaluate(() => window.hfeStats.width + 'x' + window.hfeStats.height);
	check(got === want, `${label}: the decoded stream follows the page's size ${want}`, st);
	const mode = await waitFor('weston\'s mode', () => vm.westonMode() === want && want, 30000)
		.catch(() => vm.westonMode());
	check(mode === want, `${label}: weston's log shows ${want} as its current mode`, mode);
}

// Access units the viewer received in ms milliseconds while act() ran (or,
// with no act, while the pointer stayed still).
async function framesDuring(url, ms, act) {
	const f0 = (await upstreamStats(url)).frames;
	const t0 = Date.now();
	if (act)
		await act();
	await sleep(Math.max(0, ms - (Date.now() - t0)) + 500); // + what was in flight
	return (await upstreamStats(url)).frames - f0;
}

// The pointer moved across the picture's lower half, as a person moves a mouse.
async function sweepPointer(page) {
	const s = await page.evaluate(() => ({ w: window.hfeStats.width, h: window.hfeStats.height }));
	for (let i = 0; i <= 40; i++) {
		const c = await toPage(page, s.w * (0.1 + 0.02 * i), s.h * (0.55 + 0.008 * i));
		await page.mouse.move(c.x, c.y);
		await sleep(50);
	}
}

async function main() {
	vm = await bootDesktop({ host, work, consoleLog });
	const ctl = vm.ctl;
	const t = vm.consoleText();
	check(/QEMU Virtio Keyboard: device is a keyboard/.test(t),
	      'weston took the virtio keyboard');
	check(/QEMU Virtio Tablet: device is a pointer/.test(t),
	      'weston took the virtio tablet as its pointer');
	if (host === 'module')
		check(/HFE-DESKTOP: gpu features: .*\+virgl/.test(t), 'the guest renders with virgl');

	const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
	try {
		await waitShell(browser, ctl);
		const viewer = start('viewer', VIEWER, ['--connect', 'unix:' + ctl, '--scanout', '0',
							'--http', '127.0.0.1:0', '--control', '--replug']);
		const url = await viewerUrl(viewer);
		const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
		await page.goto(url);
		await waitFor('a decoded picture with input on', () => page.evaluate(
			() => window.hfeStats.framesDecoded > 0 && window.hfeStats.input), 60000);
		await followsPage(page, 'on load');

		// The first terminal is opened from the page, after the size has settled: the
		// page's first size request replugs the output (weston 10 takes a new mode only
		// so), and a weston 10 client binding wl_output at that moment dies ("invalid
		// global wl_output"); the terminal the session starts itself did, now and then.
		const first = await openTerminal(page);
		check(first !== null, 'a click on the panel\'s launcher opened a terminal ' +
		      `(${first} samples of the picture changed)`);
		await sleep(3000);

		// type a command into the terminal
		let term = await findTerminal(page);
		let c = await toPage(page, (term.x0 + term.x1) / 2, (term.y0 + term.y1) / 2);
		await page.mouse.click(c.x, c.y);
		const before = await stable(page, term);
		const r1 = await runMarked(page, 100 + Math.floor(Math.random() * 800));
		const mark = r1.tty;
		check(mark !== null, `typed in the page, the guest's shell printed HFE-MARK-${r1.product} ` +
		      `(the product of what was typed; attempt ${r1.tries} of 3)`, mark);
		const after = await stable(page, term);
		check(after.bright > before.bright + 150,
		      'the typed text and its output appear in the terminal\'s region of the picture ' +
		      `(bright pixels ${before.bright} -> ${after.bright})`);
		await page.screenshot({ path: shot('typed') });

		// the wheel scrolls the terminal's scrollback
		await typeKeys(page, 'seq 1 300\n');
		await sleep(2000);
		const bottom = await stable(page, term);
		c = await toPage(page, (term.x0 + term.x1) / 2, (term.y0 + term.y1) / 2);
		await page.mouse.move(c.x, c.y);
		await page.mouse.wheel(0, -500);
		const up = await waitFor('the terminal to scroll', async () => {
			const cur = await page.evaluate(analyse, term);
			return gridDiff(cur.grid, bottom.grid) > 50 && cur;
		}, 30000).catch(() => null);
		check(up !== null, 'wheel up: the terminal\'s region of the picture scrolled');
		await page.mouse.wheel(0, 500);
		const down = await waitFor('the terminal to scroll back', async () => {
			const cur = await stable(page, term, 800);
			return gridDiff(cur.grid, bottom.grid) < 20 && cur;
		}, 30000).catch(() => null);
		check(down !== null, 'wheel down: back to the bottom of the scrollback');

		// a click at an absolute position again: a second terminal
		const grown = await openTerminal(page);
		check(grown !== null, 'a click on the panel\'s launcher opened a second terminal ' +
		      `(${grown} samples of the picture changed)`);
		await sleep(3000);
		const r2 = await runMarked(page, 7);
		const mark2 = r2.tty;
		check(mark2 !== null && mark2 !== mark,
		      `the new terminal has the focus: it printed ${mark2} (the first ${mark}; ` +
		      `attempt ${r2.tries} of 3)`);
		await page.screenshot({ path: shot('two-terminals') });

		// moving the pointer
		check((await upstreamStats(url)).cursor, 'the viewer took the cursor channel');
		await sweepPointer(page); // the first sweep defines the shape
		await sleep(1000);
		const pos0 = await page.evaluate(() => window.hfeCursor.state.positions);
		const still = await framesDuring(url, 3000, null);
		const moved = await framesDuring(url, 3000, () => sweepPointer(page));
		const cur = await page.evaluate(() => ({ ...window.hfeCursor.state }));
		if (host === 'module') {
			// weston (GL renderer, virgl) puts the pointer on virtio-gpu's cursor plane
			check(cur.shapes > 0 && cur.positions - pos0 >= 10,
			      `the guest's hardware cursor came as messages (${cur.shapes} shapes, ` +
			      `${cur.positions - pos0} positions while moving)`, cur);
			check(moved <= still + 2, 'moving the pointer brought no extra access units ' +
			      `(${moved} while moving, ${still} as long with the pointer still)`);
		} else {
			// weston 10 on 2D virtio-gpu draws the pointer into its picture itself (its
			// cursor plane needs GBM, which the pixman renderer has not): it comes in the
			// picture, and no cursor message can
			check(cur.shapes === 0 && moved > still,
			      'the guest draws its pointer into the picture: moving it changed the ' +
			      `picture (${moved} access units while moving, ${still} with it still)`, cur);
		}

		// size follows the page
		await page.setViewportSize({ width: 1280, height: 860 });
		await followsPage(page, 'after a resize');
		term = await findTerminal(page).catch(() => null);
		check(term !== null, 'the terminals survived the new mode');
		await page.screenshot({ path: shot('resized') });
		const s = await page.evaluate(() => ({ ...window.hfeStats }));
		check(s.decodeErrors === 0, 'no decoder errors', s.lastError);
		console.log(`page: ${s.width}x${s.height}, ${s.framesDecoded} frames decoded, ` +
			    `latency ${s.latencyMs && s.latencyMs.toFixed(1)} ms`);
	} finally {
		await browser.close();
	}
}

await runTest(main, `screenshots and console: ${out}/desktop-${host}-*`);
