// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Browser test of input: typing and pointing in hfe-viewer's page reaches a
 * real guest. Stock QEMU (-display dbus, virtio keyboard and tablet) boots
 * the test guest in hfe-guest mode=input (each evdev event its kernel gets
 * is echoed on the serial console); the daemon attaches with a
 * --control-listen; hfe-viewer --control subscribes there; Chromium, driven
 * by Playwright, opens the page. Checked, in the guest's console:
 *  - keys typed in the page arrive as their evdev codes (by physical key:
 *    KeyH is 35 whatever the layout), shift included, in order;
 *  - the pointer over the middle of the picture arrives scaled to the
 *    tablet's range; a click is BTN_LEFT down and up; the wheel a notch;
 *  - a key held when the window loses focus is released;
 *  - the page's input goes nowhere without --control (a second viewer).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

import { CHROMIUM, check, chromium, runTest, sleep, start, viewerUrl, waitFor, workDirs }
	from './lib.mjs';

const DAEMON = process.env.HFE_DAEMON;
const VIEWER = process.env.HFE_VIEWER;
const QEMU = process.env.HFE_E2E_QEMU || 'qemu-system-x86_64';
const FB_W = 640, FB_H = 480, ABS_MAX = 0x7fff;

const { work, out } = workDirs('hfe-browser-input-');
const consoleLog = path.join(out, 'input-console.log');

// The guest's events so far: "key 35 1", "abs X Y", "wheel -1".
function guestEvents() {
	const text = fs.existsSync(consoleLog) ? fs.readFileSync(consoleLog, 'utf8') : '';
	return text.split('\n').filter((l) => l.startsWith('HFE-GUEST: input: '))
		.map((l) => l.slice('HFE-GUEST: input: '.length).trim());
}

// Wait until `want` (in this order) follow event index `from`.
async function guestSaw(want, from, timeoutMs = 20000) {
	try {
		return await waitFor(want.join(', '), () => {
			const ev = guestEvents().slice(from);
			let i = 0;
			for (const e of ev)
				if (i < want.length && e === want[i])
					i++;
			return i === want.length;
		}, timeoutMs);
	} catch (e) {
		return false;
	}
}

async function main() {
	const guest = execFileSync(process.env.HFE_E2E_BUILD_GUEST,
				   ['--tool', process.env.HFE_E2E_GUEST_TOOL])
		.toString().trim().split('\n').pop();
	const qmp = path.join(work, 'qmp.sock'), gsock = path.join(work, 'guest.sock');
	const ctl = path.join(work, 'ctl.sock');
	start('daemon', DAEMON, ['--qemu', 'qmp:unix:' + qmp, '--console', '0', '--listen',
				 'unix:' + gsock, '--control-listen', 'unix:' + ctl]);
	await waitFor('the daemon', () => fs.existsSync(ctl) && fs.existsSync(gsock), 10000);
	const kernel = fs.existsSync(path.join(guest, 'vmlinux')) ? 'vmlinux' : 'vmlinuz';
	const qemu = start('qemu', QEMU, [
		// no PS/2 (i8042=off): QEMU gives keys to the keyboard it activated last,
		// at times q35's PS/2 one, which this guest does not read
		'-machine', 'q35,i8042=off', '-accel', 'tcg', '-m', '512', '-display', 'dbus,p2p=yes',
		'-serial', 'stdio', // (with -serial file: the first input was lost, see below) '-monitor', 'none', '-no-reboot', '-nic', 'none',
		'-kernel', path.join(guest, kernel), '-initrd', path.join(guest, 'initrd.img'),
		'-append', 'console=ttyS0 panic=-1 quiet mitigations=off hfe.mode=input ' +
			'hfe.duration=600000 hfe.echo=1',
		'-vga', 'none', '-device', `virtio-gpu-pci,xres=${FB_W},yres=${FB_H}`,
		'-device', 'virtio-serial-pci',
		'-chardev', `socket,id=hfe,path=${gsock},reconnect=1`,
		'-device', 'virtserialport,chardev=hfe,name=org.helix.hfe.0',
		'-chardev', `file,id=hfeout,path=${path.join(work, 'out.bin')}`,
		'-device', 'virtserialport,chardev=hfeout,name=org.helix.out.0',
		'-qmp', `unix:${qmp},server=on,wait=off`,
		'-device', 'virtio-keyboard-pci', '-device', 'virtio-tablet-pci']);
	fs.writeFileSync(consoleLog, '');
	qemu.stdout.on('data', (d) => fs.appendFileSync(consoleLog, d));
	await waitFor('the guest\'s input devices', () => {
		if (qemu.exitCode !== null)
			throw new Error('QEMU exited: ' + qemu.stderrText);
		return fs.existsSync(consoleLog) &&
			fs.readFileSync(consoleLog, 'utf8').includes('HFE-GUEST: input ready');
	}, 120000);

	const viewer = start('viewer', VIEWER, ['--connect', 'unix:' + ctl, '--scanout', '0',
						'--http', '127.0.0.1:0', '--control']);
	const plain = start('viewer-plain', VIEWER, ['--connect', 'unix:' + ctl, '--scanout', '0',
						     '--http', '127.0.0.1:0']);
	const url = await viewerUrl(viewer), plainUrl = await viewerUrl(plain);

	const browser = await chromium.launch({ executablePath: CHROMIUM,
		args: ['--no-sandbox', '--autoplay-policy=no-user-gesture-required'] });
	const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
	await page.goto(url);
	await waitFor('a decoded picture with input on', () => page.evaluate(
		() => window.hfeStats.framesDecoded > 0 && window.hfeStats.input), 60000);
	check(true, 'the page shows the VM and says it forwards input');

	// A person clicks into the picture first. With QEMU's console on
	// -serial file: the session's first input (1-2 clicks) never reached the
	// guest although QEMU had it (traced: dbus_kbd_press, input_event_*; no
	// virtio_input_queue_full); with -serial stdio, as test_e2e_input runs it,
	// none is lost. Not understood: the first click must arrive, and later
	// checks still run if it does not.
	const box0 = await page.locator('#screen').boundingBox();
	let warm = 0;
	for (; warm < 5; warm++) {
		const n = guestEvents().length;
		await page.mouse.click(box0.x + 10 + warm, box0.y + 10);
		if (await guestSaw(['key 272 1', 'key 272 0'], n, 3000))
			break;
	}
	check(warm === 0, `the first click into the picture reached the guest (${warm} lost)`);
	let from;
	// the pointer: the middle of the picture, a click (as a person clicks into the
	// picture before typing), the wheel
	const box = await page.locator('#screen').boundingBox();
	const scale = Math.min(box.width / FB_W, box.height / FB_H);
	const cx = box.x + box.width / 2, cy = box.y + box.height / 2;
	from = guestEvents().length;
	await page.mouse.move(cx, cy);
	const want = (v, size) => Math.floor(v) * ABS_MAX / size;
	const ok = await waitFor('a position', () => guestEvents().slice(from).find((e) => {
		const m = /^abs (\d+) (\d+)$/.exec(e);
		return m && Math.abs(m[1] - want(FB_W / 2, FB_W)) <= 2 * ABS_MAX / FB_W &&
			Math.abs(m[2] - want(FB_H / 2, FB_H)) <= 2 * ABS_MAX / FB_H;
	}), 20000).catch(() => null);
	check(ok, `the pointer at the picture's middle (scale ${scale.toFixed(2)}) arrived as ` +
	      'the tablet\'s middle', guestEvents().slice(from, from + 20));
	from = guestEvents().length;
	await page.mouse.down();
	await page.mouse.up();
	check(await guestSaw(['key 272 1', 'key 272 0'], from), 'a click is BTN_LEFT down, up',
	      guestEvents().slice(from, from + 20));
	from = guestEvents().length;
	await page.mouse.wheel(0, 100);
	check(await guestSaw(['wheel -1'], from), 'the wheel down one notch', guestEvents().slice(from, from + 20));

	// keys, by physical code
	from = guestEvents().length;
	await page.keyboard.press('KeyH');
	await page.keyboard.press('KeyI');
	await page.keyboard.down('Shift');
	await page.keyboard.press('KeyA');
	await page.keyboard.up('Shift');
	await page.keyboard.press('Enter');
	check(await guestSaw(['key 35 1', 'key 35 0', 'key 23 1', 'key 23 0', 'key 42 1',
			      'key 30 1', 'key 30 0', 'key 42 0', 'key 28 1', 'key 28 0'], from),
	      'typed h, i, shift+a, enter: the guest got evdev 35, 23, 42+30, 28 in order',
	      guestEvents().slice(from, from + 20));

	// a key held when the window loses focus
	from = guestEvents().length;
	await page.keyboard.down('KeyB');
	await page.evaluate(() => window.dispatchEvent(new Event('blur')));
	check(await guestSaw(['key 48 1', 'key 48 0'], from),
	      'a key held when the page lost focus was released', guestEvents().slice(from, from + 20));
	await page.keyboard.up('KeyB');

	// without --control the page's keys go nowhere
	const page2 = await browser.newPage();
	await page2.goto(plainUrl);
	await waitFor('the plain viewer\'s picture', () => page2.evaluate(
		() => window.hfeStats.framesDecoded > 0), 60000);
	check(!(await page2.evaluate(() => window.hfeStats.input)),
	      'a viewer without --control tells its page it takes no input');
	from = guestEvents().length;
	await page2.keyboard.press('KeyZ');
	await sleep(1500);
	check(!guestEvents().slice(from).includes('key 44 1'),
	      'keys in a page of a viewer without --control do not reach the guest');

	const s = await page.evaluate(() => ({ ...window.hfeStats }));
	check(s.decodeErrors === 0, 'no decoder errors', s.lastError);
	await page.screenshot({ path: path.join(out, 'input.png') });
	await browser.close();
}

await runTest(main);
