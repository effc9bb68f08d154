// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * What the browser tests share: counted checks, child processes killed and a
 * work directory removed at exit, polling with a timeout, the viewer's
 * printed URL. (cursor.test.mjs uses it; the older tests still carry their
 * own copies.)
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const counts = { checks: 0, failures: 0 };

export function check(cond, what, detail) {
	counts.checks++;
	if (cond) {
		console.log(`ok   ${what}`);
	} else {
		counts.failures++;
		console.log(`FAIL ${what}${detail !== undefined ? ': ' + JSON.stringify(detail) : ''}`);
	}
	return cond;
}

const children = new Set();

// A work directory, removed (and every child killed) when the process exits.
export function workDir(name) {
	const work = fs.mkdtempSync(path.join(os.tmpdir(), `hfe-browser-${name}-`));
	process.on('exit', () => {
		for (const p of children)
			p.kill('SIGKILL');
		fs.rmSync(work, { recursive: true, force: true });
	});
	return work;
}

export function start(name, file, args, env = {}) {
	const p = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'],
				      env: { ...process.env, HFE_LOG: 'warn', ...env } });
	p.name = name;
	p.stdoutText = '';
	p.stderrText = '';
	p.stdout.on('data', (d) => { p.stdoutText += d; });
	p.stderr.on('data', (d) => { p.stderrText += d; });
	p.on('exit', () => children.delete(p));
	children.add(p);
	return p;
}

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

export async function viewerUrl(p) {
	return waitFor('the viewer URL', () => {
		const m = /open (https?:\/\/\S+) in a browser/.exec(p.stdoutText + p.stderrText);
		return m && m[1];
	}, 10000);
}

// Run main, report, exit with the result.
export async function run(main) {
	try {
		await main();
	} catch (e) {
		counts.failures++;
		console.log('FAIL ' + (e.stack || e));
		for (const p of children)
			console.log(`--- ${p.name} stderr:\n${p.stderrText.slice(-2000)}`);
	}
	console.log(`${counts.checks - counts.failures} of ${counts.checks} checks passed` +
		    `${counts.failures ? '' : ': all ok'}`);
	process.exit(counts.failures ? 1 : 0);
}
