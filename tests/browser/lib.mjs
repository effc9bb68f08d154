// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * What the browser tests share: Playwright (installed by run.sh), checks and
 * their tally, a work directory, child processes killed at exit, polling.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(process.env.HFE_NPM_DIR, 'package.json'));
export const { chromium } = require('playwright-core');
export const CHROMIUM = process.env.HFE_CHROMIUM || '/usr/bin/chromium';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let failures = 0, checks = 0;
// One check: printed as ok / FAIL (with the caller's line), counted.
export function check(cond, what, detail) {
	checks++;
	if (cond) {
		console.log(`ok   ${what}`);
	} else {
		failures++;
		const where = new Error().stack.split('\n')[2].trim().replace(/^at /, '');
		const more = detail !== undefined ? ': ' + JSON.stringify(detail) : '';
		console.log(`FAIL ${what}${more} (${where})`);
	}
	return cond;
}

const children = new Set(); // running
const started = [];

// Runs main() (a throw is a failure); after a failure shows the end of every
// child's stderr; prints note (e.g. where the screenshots are) and the tally,
// and exits with it.
export async function runTest(main, note) {
	try {
		await main();
	} catch (e) {
		checks++;
		failures++;
		console.log('FAIL ' + (e && e.stack || e));
	}
	if (failures)
		for (const p of started)
			console.log(`--- ${p.name} stderr:\n${p.stderrText.slice(-4000)}`);
	if (note)
		console.log(note);
	console.log(`${checks - failures} of ${checks} checks passed` +
		    (failures ? `, ${failures} failed` : ': all ok'));
	process.exit(failures ? 1 : 0);
}

// A temporary directory (removed at exit) and the output directory
// ($HFE_BROWSER_OUT, kept for a person to look at).
export function workDirs(prefix) {
	const work = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
	const out = process.env.HFE_BROWSER_OUT || path.join(work, 'out');
	fs.mkdirSync(out, { recursive: true });
	process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));
	return { work, out };
}

// A child whose stdout/stderr are collected (p.stdoutText, p.stderrText);
// p.exited resolves to { code, sig }. Killed when the test exits.
export function start(name, file, args, env = {}, opts = {}) {
	const p = spawn(file, args, { stdio: [opts.stdin || 'ignore', 'pipe', 'pipe'],
				      env: { ...process.env, HFE_LOG: 'warn', ...env } });
	p.name = name;
	p.stdoutText = '';
	p.stderrText = '';
	p.stdout.on('data', (d) => { p.stdoutText += d; });
	p.stderr.on('data', (d) => { p.stderrText += d; });
	p.exited = new Promise((resolve) => p.on('exit', (code, sig) => {
		children.delete(p);
		resolve({ code, sig });
	}));
	children.add(p);
	started.push(p);
	return p;
}

// SIGINT, then SIGKILL after timeoutMs.
export async function stop(p, timeoutMs = 10000) {
	if (p.exitCode !== null || p.signalCode !== null)
		return p.exited;
	p.kill('SIGINT');
	const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
	const r = await p.exited;
	clearTimeout(t);
	return r;
}

process.on('exit', () => {
	for (const p of children)
		p.kill('SIGKILL');
});

// Poll fn (may be async) every 100 ms until it returns something truthy.
export async function waitFor(what, fn, timeoutMs) {
	const end = Date.now() + timeoutMs;
	for (;;) {
		const v = await fn();
		if (v)
			return v;
		if (Date.now() > end)
			throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
		await sleep(100);
	}
}

// The URL a viewer prints on stdout ("open URL in a browser").
export async function viewerUrl(p, timeoutMs = 10000) {
	return waitFor('the viewer URL', () => {
		const m = /open (https?:\/\/\S+) in a browser/.exec(p.stdoutText);
		return m && m[1];
	}, timeoutMs);
}

// What the viewer says of its upstream (stats.json): frames (access units
// received), cursor (whether it took the cursor channel), ...
export async function upstreamStats(url) {
	const r = await fetch(new URL('stats.json', url));
	return (await r.json()).upstream;
}

// A picture pixel -> the page's coordinates: the canvas (sel) may be letterboxed
// (object-fit: contain); noVNC's is shown 1:1. s: the picture's scale on the page.
export async function toPage(page, x, y, sel = '#screen') {
	return page.evaluate(([x, y, sel]) => {
		const c = document.querySelector(sel);
		const r = c.getBoundingClientRect();
		const k = Math.min(r.width / c.width, r.height / c.height);
		return { x: r.left + (r.width - c.width * k) / 2 + (x + 0.5) * k,
			 y: r.top + (r.height - c.height * k) / 2 + (y + 0.5) * k, s: k };
	}, [x, y, sel]);
}
