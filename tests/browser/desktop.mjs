// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The desktop guest (tests/e2e/build-desktop-image.sh: Debian 12, weston with
 * its desktop shell, weston-terminal) booted under one of the two host paths,
 * and what a script does with it through hfe-viewer's page: shared by
 * desktop.test.mjs and bench/desktop-vs-vnc.mjs.
 *   host 'dbus'    stock QEMU, -display dbus, 2D virtio-gpu-pci, the daemon's
 *                  --control-listen
 *   host 'module'  the patched QEMU (qemu/build.sh), virtio-gpu-gl-pci (virgl)
 *                  under -display helix (or gl: 'egl-headless'), the object's
 *                  control-listen=
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { sleep, start, stop, toPage, viewerUrl, waitFor } from './lib.mjs';

export { toPage }; // the desktop's callers take it from here

const BOOT_MS = 300000;

// The desktop image's directory (built once, cached).
export function desktopImage() {
	return execFileSync(process.env.HFE_E2E_BUILD_DESKTOP, [],
			    { stdio: ['ignore', 'pipe', 'inherit'] })
		.toString().trim().split('\n').pop();
}

function qemuArgs(o, desktop, ctl, gsock) {
	const kernel = fs.existsSync(path.join(desktop, 'vmlinux')) ? 'vmlinux' : 'vmlinuz';
	const args = [
		// no PS/2 (i8042=off): keys go to the virtio keyboard (see input.test.mjs)
		'-machine', 'q35,i8042=off', '-accel', 'tcg', '-m', '2048', '-smp', '2',
		'-serial', 'stdio', '-monitor', 'none', '-no-reboot', '-nic', 'none',
		'-kernel', path.join(desktop, kernel), '-initrd', path.join(desktop, 'initrd.img'),
		// no_timer_check: a loaded host under TCG can fail the kernel's IO-APIC
		// timer check ("IO-APIC + timer doesn't work!", a panic; seen here)
		// hfe.terminal=0: the page opens the terminal itself (desktop.test.mjs:
		// the replug race)
		'-append', 'console=ttyS0 panic=-1 quiet mitigations=off no_timer_check hfe.terminal=0',
		'-drive', `file=${path.join(desktop, 'rootfs.img')},format=raw,if=virtio,readonly=on`,
		'-vga', 'none', '-device', 'virtio-keyboard-pci', '-device', 'virtio-tablet-pci',
		...o.extraArgs];
	if (o.host === 'dbus')
		return args.concat(['-display', 'dbus,p2p=yes', '-device',
				    'virtio-gpu-pci,xres=1024,yres=768', '-qmp',
				    `unix:${path.join(o.work, 'qmp.sock')},server=on,wait=off`]);
	const rn = fs.existsSync('/dev/dri/renderD128') ? '' : ',rendernode=/dev/null';
	return args.concat(['-display', o.gl + rn, '-device',
			    'virtio-gpu-gl-pci,xres=1024,yres=768',
			    '-L', '/usr/share/qemu', '-L', '/usr/share/seabios', '-L',
			    '/usr/lib/ipxe/qemu', '-object',
			    `helix-frame-export,id=hfe0,listen=unix:${gsock},control-listen=unix:${ctl}`]);
}

// The patched QEMU's binary and its environment (LD_LIBRARY_PATH to this build's
// libhfe; an ASan build's runtime preloaded, as e2e_qemu_env_begin does).
function moduleQemu() {
	const dir = execFileSync(process.env.HFE_QEMU_BUILD, ['--hfe-build', process.env.HFE_BUILD_ROOT],
				 { stdio: ['ignore', 'pipe', 'inherit'] })
		.toString().trim().split('\n').pop();
	const lib = path.join(process.env.HFE_BUILD_ROOT, 'lib');
	const env = { LD_LIBRARY_PATH: lib };
	const asan = /\s(\/\S*libasan\.so\S*)/.exec(execFileSync('ldd',
		[path.join(lib, 'libhfe.so')]).toString());
	if (asan)
		Object.assign(env, { LD_PRELOAD: asan[1], ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1' });
	return { bin: path.join(dir, 'bin', 'qemu-system-x86_64'), env };
}

/*
 * Boots the desktop guest and waits for weston. o: { host, work, consoleLog,
 * gl ('helix' or 'egl-headless', module only), extraArgs (more QEMU
 * arguments), daemonArgs (more daemon arguments, dbus only), env (more
 * environment for the host: the daemon, or the module's QEMU) }. Returns { ctl
 * (the host's control socket), qemu, host (the daemon, or QEMU), consoleText(),
 * westonMode() }.
 */
export async function bootDesktop(o) {
	o = { gl: 'helix', extraArgs: [], daemonArgs: [], env: {}, ...o };
	const desktop = desktopImage();
	console.log(`desktop guest ${desktop}, host path ${o.host}`);
	const ctl = path.join(o.work, 'ctl.sock'), gsock = path.join(o.work, 'guest.sock');
	let daemon = null;
	if (o.host === 'dbus')
		daemon = start('daemon', process.env.HFE_DAEMON, ['--qemu', 'qmp:unix:' +
			path.join(o.work, 'qmp.sock'), '--console', '0', '--control-listen', 'unix:' + ctl,
			...o.daemonArgs], o.env);
	let q = { bin: process.env.HFE_E2E_QEMU || 'qemu-system-x86_64', env: {} };
	if (o.host === 'module')
		q = moduleQemu();
	if (o.host === 'module')
		Object.assign(q.env, o.env);
	const consoleText = () => fs.existsSync(o.consoleLog)
		? fs.readFileSync(o.consoleLog, 'utf8') : '';
	// The mode weston's log last called current ("WxH@R, preferred, current").
	const westonMode = () => {
		const m = [...consoleText().matchAll(/weston:\s+(\d+)x(\d+)@[\d.]+[^\n]*\bcurrent\b/g)];
		return m.length ? `${m[m.length - 1][1]}x${m[m.length - 1][2]}` : null;
	};
	const t0 = Date.now();
	const qemu = start('qemu', q.bin, qemuArgs(o, desktop, ctl, gsock), q.env);
	fs.writeFileSync(o.consoleLog, '');
	qemu.stdout.on('data', (d) => fs.appendFileSync(o.consoleLog, d));
	await waitFor('weston in the guest', () => {
		if (qemu.exitCode !== null)
			throw new Error(`QEMU exited (${qemu.exitCode}): ${qemu.stderrText} ` +
					`(console: ${o.consoleLog})`);
		const t = consoleText();
		if (t.includes('HFE-DESKTOP: weston failed'))
			throw new Error('weston failed in the guest (console: ' + o.consoleLog + ')');
		return t.includes('HFE-DESKTOP: weston ready');
	}, BOOT_MS);
	console.log(`weston ready ${((Date.now() - t0) / 1000).toFixed(1)} s after QEMU started`);
	await waitFor('the control socket', () => fs.existsSync(ctl), 30000);
	return { ctl, qemu, host: daemon || qemu, consoleText, westonMode };
}

// The picture's centre bottom shows weston-desktop-shell's background (luma
// ~54), not black (weston alone, or a stream's first picture). Runs in a page:
// sel is the canvas (hfe-viewer's '#screen', or noVNC's).
export function shellShown(sel) {
	const c = document.querySelector(sel);
	const d = c.getContext('2d').getImageData(c.width >> 1, c.height - 8, 1, 1).data;
	return d[0] + d[1] + d[2] > 90;
}

/*
 * Waits until weston-desktop-shell has drawn its background, seen through a
 * viewer that asks for no size (the guest's own mode). The image's "weston
 * ready" means the shell was launched, not that it is up, and a replug while
 * the shell binds the output kills it ("invalid global wl_output"); weston 10
 * then quits (docs/e2e.md, "The replug race": seen with a page whose first
 * size came 1.5 s after the launch). The image's init starts weston again, but
 * the session's windows are lost: so the first size waits for this.
 */
export async function waitShell(browser, ctl) {
	const viewer = start('viewer (shell)', process.env.HFE_VIEWER, ['--connect', 'unix:' + ctl,
		'--scanout', '0', '--http', '127.0.0.1:0']);
	const page = await browser.newPage({ viewport: { width: 800, height: 600 } });
	try {
		await page.goto(await viewerUrl(viewer));
		const t0 = Date.now();
		await waitFor('weston-desktop-shell\'s background', async () =>
			await page.evaluate(() => window.hfeStats.framesDecoded > 0) &&
			page.evaluate(shellShown, '#screen'), 180000);
		console.log(`the shell's background after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
	} finally {
		await page.close();
		await stop(viewer);
	}
}

// Runs in hfe-viewer's page: where the canvas's dark (terminal) pixels are, how
// many bright (glyph) pixels a box holds, a coarse luma grid of a box.
export function analyse(box) {
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

export function gridDiff(a, b) {
	let n = 0;
	for (let i = 0; i < Math.min(a.length, b.length); i++)
		n += Math.abs(a[i] - b[i]) > 40;
	return n;
}

// US layout: the physical key of each character, and whether it is shifted.
const SHIFTED = { '!': 'Digit1', '@': 'Digit2', '#': 'Digit3', $: 'Digit4', '%': 'Digit5',
	'^': 'Digit6', '&': 'Digit7', '*': 'Digit8', '(': 'Digit9', ')': 'Digit0', _: 'Minus',
	'+': 'Equal', '>': 'Period', '<': 'Comma', '|': 'Backslash', '"': 'Quote', ':': 'Semicolon' };
const PLAIN = { ' ': 'Space', '-': 'Minus', '=': 'Equal', '.': 'Period', ',': 'Comma',
	'/': 'Slash', '\\': 'Backslash', "'": 'Quote', ';': 'Semicolon', '\n': 'Enter' };

// The physical key of a character: { code, shift }.
export function keyOf(ch) {
	if (/[a-z]/.test(ch))
		return { code: 'Key' + ch.toUpperCase(), shift: false };
	if (/[A-Z]/.test(ch))
		return { code: 'Key' + ch, shift: true };
	if (/[0-9]/.test(ch))
		return { code: 'Digit' + ch, shift: false };
	if (SHIFTED[ch])
		return { code: SHIFTED[ch], shift: true };
	if (PLAIN[ch])
		return { code: PLAIN[ch], shift: false };
	throw new Error(`typeKeys: no key for '${ch}'`);
}

// Types text key by key, by physical code (the page sends codes, so shifted
// characters need the Shift key really held). Paced: the host takes 200
// input messages a second, and a guest under TCG is slow.
export async function typeKeys(page, text) {
	for (const ch of text) {
		const { code, shift } = keyOf(ch);
		if (shift)
			await page.keyboard.down('Shift');
		await page.keyboard.press(code);
		if (shift)
			await page.keyboard.up('Shift');
		await sleep(40);
	}
}

// The terminal window: the largest dark region below the panel.
export async function findTerminal(page) {
	return waitFor('a terminal window in the picture', async () => {
		const a = await page.evaluate(analyse, null);
		const b = a.box;
		return b && b.x1 - b.x0 > 200 && b.y1 - b.y0 > 100 ? b : null;
	}, 120000);
}

// Waits until two pictures ms apart agree (the guest is slow to draw).
export async function stable(page, box, ms = 1500) {
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
export async function openTerminal(page) {
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
