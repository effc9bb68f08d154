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
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { CHROMIUM, check, chromium, runTest, sleep, start, upstreamStats, viewerUrl, waitFor,
	workDirs } from './lib.mjs';

const host = process.argv.includes('--host') ? process.argv[process.argv.indexOf('--host') + 1]
	: 'dbus';
if (host !== 'dbus' && host !== 'module') {
	console.log('usage: desktop.test.mjs --host dbus|module');
	process.exit(2);
}
const DAEMON = process.env.HFE_DAEMON;
const VIEWER = process.env.HFE_VIEWER;
const BOOT_MS = 300000;
const { work, out } = workDirs('hfe-browser-desktop-');
const consoleLog = path.join(out, `desktop-${host}-console.log`);
const shot = (name) => path.join(out, `desktop-${host}-${name}.png`);

function consoleText() {
	return fs.existsSync(consoleLog) ? fs.readFileSync(consoleLog, 'utf8') : '';
}

// The mode weston's log last called current ("WxH@R, preferred, current").
function westonMode() {
	const m = [...consoleText().matchAll(/weston:\s+(\d+)x(\d+)@[\d.]+[^\n]*\bcurrent\b/g)];
	return m.length ? `${m[m.length - 1][1]}x${m[m.length - 1][2]}` : null;
}

function qemuArgs(desktop, ctl, gsock) {
	const kernel = fs.existsSync(path.join(desktop, 'vmlinux')) ? 'vmlinux' : 'vmlinuz';
	const args = [
		// no PS/2 (i8042=off): keys go to the virtio keyboard (see input.test.mjs)
		'-machine', 'q35,i8042=off', '-accel', 'tcg', '-m', '2048', '-smp', '2',
		'-serial', 'stdio', '-monitor', 'none', '-no-reboot', '-nic', 'none',
		'-kernel', path.join(desktop, kernel), '-initrd', path.join(desktop, 'initrd.img'),
		// no_timer_check: a loaded host under TCG can fail the kernel's IO-APIC
		// timer check ("IO-APIC + timer doesn't work!", a panic; seen here)
		// hfe.terminal=0: the page opens the terminal itself (main: the replug race)
		'-append', 'console=ttyS0 panic=-1 quiet mitigations=off no_timer_check hfe.terminal=0',
		'-drive', `file=${path.join(desktop, 'rootfs.img')},format=raw,if=virtio,readonly=on`,
		'-vga', 'none', '-device', 'virtio-keyboard-pci', '-device', 'virtio-tablet-pci'];
	if (host === 'dbus')
		return args.concat(['-display', 'dbus,p2p=yes', '-device',
				    'virtio-gpu-pci,xres=1024,yres=768', '-qmp',
				    `unix:${path.join(work, 'qmp.sock')},server=on,wait=off`]);
	const gl = fs.existsSync('/dev/dri/renderD128') ? '' : ',rendernode=/dev/null';
	return args.concat(['-display', 'helix' + gl, '-device',
			    'virtio-gpu-gl-pci,xres=1024,yres=768',
			    '-L', '/usr/share/qemu', '-L', '/usr/share/seabios', '-L',
			    '/usr/lib/ipxe/qemu', '-object',
			    `helix-frame-export,id=hfe0,listen=unix:${gsock},control-listen=unix:${ctl}`]);
}

// Runs in the page: where the canvas's dark (terminal) pixels are, how many
// bright (glyph) pixels a box holds, a coarse luma grid of a box.
function analyse(box) {
	const c = document.getElementById('screen');
	const w = c.width, h = c.height;
	const d = c.getContext('2d').getImageData(0, 0, w, h).data;
	const luma = (x, y) => {
		const i = (y * w + x) * 4;
		return 0.299 * d[i] + 0.587 * d[i + 1] + 0.114 * d[i + 2];
	};
	// Below weston's panel: the desktop's background is luma ~54, a
	// terminal's ~0.
	let x0 = w, y0 = h, x1 = -1, y1 = -1, dark = 0;
	for (let y = 40; y < h; y += 4)
		for (let x = 0; x < w; x += 4)
			if (luma(x, y) < 20) {
				dark++;
				x0 = Math.min(x0, x); y0 = Math.min(y0, y);
				x1 = Math.max(x1, x); y1 = Math.max(y1, y);
			}
	let bright = 0;
	const grid = [];
	if (box)
		for (let y = box.y0; y < box.y1 && y < h; y += 2)
			for (let x = box.x0; x < box.x1 && x < w; x += 2) {
				const l = luma(x, y);
				bright += l > 100;
				grid.push(Math.round(l));
			}
	return { w, h, dark, box: dark ? { x0, y0, x1, y1 } : null, bright, grid };
}

function gridDiff(a, b) {
	let n = 0;
	for (let i = 0; i < Math.min(a.length, b.length); i++)
		n += Math.abs(a[i] - b[i]) > 40;
	return n;
}

// A stream pixel -> the page's coordinates (the canvas is letterboxed).
async function toPage(page, x, y) {
	const r = await page.locator('#screen').boundingBox();
	const s = await page.evaluate(() => ({ w: window.hfeStats.width, h: window.hfeStats.height }));
	const k = Math.min(r.width / s.w, r.height / s.h);
	return { x: r.x + (r.width - s.w * k) / 2 + (x + 0.5) * k,
		 y: r.y + (r.height - s.h * k) / 2 + (y + 0.5) * k };
}

// US layout: the physical key of each character, and whether it is shifted.
const SHIFTED = { '!': 'Digit1', '@': 'Digit2', '#': 'Digit3', $: 'Digit4', '%': 'Digit5',
	'^': 'Digit6', '&': 'Digit7', '*': 'Digit8', '(': 'Digit9', ')': 'Digit0', _: 'Minus',
	'+': 'Equal', '>': 'Period', '<': 'Comma', '|': 'Backslash', '"': 'Quote', ':': 'Semicolon' };
const PLAIN = { ' ': 'Space', '-': 'Minus', '=': 'Equal', '.': 'Period', ',': 'Comma',
	'/': 'Slash', '\\': 'Backslash', "'": 'Quote', ';': 'Semicolon', '\n': 'Enter' };

// Types text key by key, by physical code (the page sends codes, so shifted
// characters need the Shift key really held). Paced: the host takes 200
// input messages a second, and a guest under TCG is slow.
async function typeKeys(page, text) {
	for (const ch of text) {
		let code, shift = false;
		if (/[a-z]/.test(ch)) {
			code = 'Key' + ch.toUpperCase();
		} else if (/[A-Z]/.test(ch)) {
			code = 'Key' + ch;
			shift = true;
		} else if (/[0-9]/.test(ch)) {
			code = 'Digit' + ch;
		} else if (SHIFTED[ch]) {
			code = SHIFTED[ch];
			shift = true;
		} else if (PLAIN[ch]) {
			code = PLAIN[ch];
		} else {
			throw new Error(`typeKeys: no key for '${ch}'`);
		}
		if (shift)
			await page.keyboard.down('Shift');
		await page.keyboard.press(code);
		if (shift)
			await page.keyboard.up('Shift');
		await sleep(40);
	}
}

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
			const m = new RegExp(`HFE-MARK-${a * b} (/dev/pts/\\d+)`).exec(consoleText());
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
	const mode = await waitFor('weston\'s mode', () => westonMode() === want && want, 30000)
		.catch(() => westonMode());
	check(mode === want, `${label}: weston's log shows ${want} as its current mode`, mode);
}

// The terminal window: the largest dark region below the panel.
async function findTerminal(page) {
	return waitFor('a terminal window in the picture', async () => {
		const a = await page.evaluate(analyse, null);
		const b = a.box;
		return b && b.x1 - b.x0 > 200 && b.y1 - b.y0 > 100 ? b : null;
	}, 120000);
}

async function stable(page, box, ms = 1500) {
	// wait until two pictures ms apart agree (the guest is slow to draw)
	let prev = await page.evaluate(analyse, box);
	for (let i = 0; i < 20; i++) {
		await sleep(ms);
		const cur = await page.evaluate(analyse, box);
		if (gridDiff(prev.grid, cur.grid) === 0)
			return cur;
		prev = cur;
	}
	return prev;
}

// A click on the panel's launcher (top left) opens a weston-terminal: the number of
// picture samples that changed (title bar, frame, what it hid), or null.
async function openTerminal(page) {
	const whole = await page.evaluate(() => {
		const c = document.getElementById('screen');
		return { x0: 0, y0: 40, x1: c.width, y1: c.height };
	});
	const desk = await page.evaluate(analyse, whole);
	const c = await toPage(page, 20, 16);
	// The pointer first, then the click: the panel takes the button only once it has
	// had the pointer's enter (a click that arrives with the move can go to what was
	// under the old position).
	await page.mouse.move(c.x, c.y);
	await sleep(1500);
	await page.mouse.click(c.x, c.y);
	return waitFor('a new terminal', async () => {
		const n = gridDiff((await page.evaluate(analyse, whole)).grid, desk.grid);
		return n > 3000 && n;
	}, 60000).catch(() => null);
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

async function bootHost(desktop) {
	const ctl = path.join(work, 'ctl.sock'), gsock = path.join(work, 'guest.sock');
	if (host === 'dbus') {
		start('daemon', DAEMON, ['--qemu', 'qmp:unix:' + path.join(work, 'qmp.sock'),
					 '--console', '0', '--control-listen', 'unix:' + ctl]);
	}
	let qemuBin = process.env.HFE_E2E_QEMU || 'qemu-system-x86_64', env = {};
	if (host === 'module') {
		const dir = execFileSync(process.env.HFE_QEMU_BUILD,
					 ['--hfe-build', process.env.HFE_BUILD_ROOT],
					 { stdio: ['ignore', 'pipe', 'inherit'] })
			.toString().trim().split('\n').pop();
		qemuBin = path.join(dir, 'bin', 'qemu-system-x86_64');
		const lib = path.join(process.env.HFE_BUILD_ROOT, 'lib');
		env = { LD_LIBRARY_PATH: lib };
		// An ASan build's libhfe in an uninstrumented QEMU: its runtime goes
		// first (as e2e_qemu_env_begin does for the C tests).
		const asan = /\s(\/\S*libasan\.so\S*)/.exec(execFileSync('ldd',
			[path.join(lib, 'libhfe.so')]).toString());
		if (asan)
			Object.assign(env, { LD_PRELOAD: asan[1],
					     ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1' });
	}
	const t0 = Date.now();
	const qemu = start('qemu', qemuBin, qemuArgs(desktop, ctl, gsock), env);
	fs.writeFileSync(consoleLog, '');
	qemu.stdout.on('data', (d) => fs.appendFileSync(consoleLog, d));
	await waitFor('weston in the guest', () => {
		if (qemu.exitCode !== null)
			throw new Error(`QEMU exited (${qemu.exitCode}): ${qemu.stderrText} ` +
					`(console: ${consoleLog})`);
		const t = consoleText();
		if (t.includes('HFE-DESKTOP: weston failed'))
			throw new Error('weston failed in the guest (console: ' + consoleLog + ')');
		return t.includes('HFE-DESKTOP: weston ready');
	}, BOOT_MS);
	console.log(`weston ready ${((Date.now() - t0) / 1000).toFixed(1)} s after QEMU started`);
	await waitFor('the control socket', () => fs.existsSync(ctl), 30000);
	return ctl;
}

async function main() {
	const desktop = execFileSync(process.env.HFE_E2E_BUILD_DESKTOP, [],
				     { stdio: ['ignore', 'pipe', 'inherit'] })
		.toString().trim().split('\n').pop();
	console.log(`desktop guest ${desktop}, host path ${host}`);
	const ctl = await bootHost(desktop);
	const t = consoleText();
	check(/QEMU Virtio Keyboard: device is a keyboard/.test(t),
	      'weston took the virtio keyboard');
	check(/QEMU Virtio Tablet: device is a pointer/.test(t),
	      'weston took the virtio tablet as its pointer');
	if (host === 'module')
		check(/HFE-DESKTOP: gpu features: .*\+virgl/.test(t), 'the guest renders with virgl');

	const viewer = start('viewer', VIEWER, ['--connect', 'unix:' + ctl, '--scanout', '0',
						'--http', '127.0.0.1:0', '--control', '--replug']);
	const url = await viewerUrl(viewer);
	const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
	try {
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
