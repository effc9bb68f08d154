// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * hfe-viewer's page: receive H.264 access units over a WebSocket, decode them
 * with WebCodecs and draw them on the canvas. The message format and what the
 * numbers mean are in docs/viewer.md.
 *
 * Every decoded (or discarded) frame is acknowledged ("ack SEQ"); the server
 * uses the acks to skip a page that falls behind and resync it with an IDR.
 * window.hfeStats holds the counters (tests/browser reads them).
 *
 * Input (when the server forwards it, hfe-viewer --control): keys by their
 * physical `code` as Linux evdev numbers, the pointer on the canvas in the
 * stream's pixels, buttons and wheel, as "key" / "ptr" text messages; keys
 * and buttons held when the page loses focus or is hidden are released.
 *
 * Size (hfe-viewer --size page, the default with --control): the picture
 * area's size in CSS pixels is sent as "size W H" when the stream starts and,
 * debounced, when the window is resized; the VM's output takes it as its
 * mode and the stream follows.
 */
'use strict';

(() => {
	const HEADER_VERSION = 1;
	const HEADER_MIN = 32;
	const FLAG_KEY = 0x01;
	const FALLBACK_CODEC = 'avc1.42E01E'; // constrained baseline 3.0
	const LATENCY_WINDOW = 60; // frames averaged
	const PONG_WINDOW = 10;
	const SIZE_DEBOUNCE_MS = 300;

	const canvas = document.getElementById('screen');
	const ctx = canvas.getContext('2d', { alpha: false });
	const statusEl = document.getElementById('status');
	const statsEl = document.getElementById('stats');

	const stats = {
		connected: false,   // WebSocket open
		refused: false,     // the viewer answers 403: not its token (restarted?)
		upstream: false,    // the server is subscribed to the host
		address: '',
		scanout: null,
		messages: 0,
		bytes: 0,
		framesReceived: 0,
		framesDecoded: 0,
		keyframes: 0,
		deltaBeforeKey: 0,  // delta frames sent before the keyframe the server owed us
		discarded: 0,       // delta frames in flight when we reset the decoder
		decodeErrors: 0,
		resets: 0,
		lastError: '',
		width: 0,
		height: 0,
		codec: '',
		fps: 0,
		kbps: 0,
		latencyMs: null,    // capture -> decoded (hostMs + viewerMs)
		hostMs: null,       // damage on the host -> access unit at the viewer server
		viewerMs: null,     // viewer server -> decoded and drawn on this page
		clockRttMs: null,   // round trip of the best clock-sync ping
		clockOffsetMs: null, // the server's CLOCK_MONOTONIC ms - performance.now()
		firstFrameMs: null, // WebSocket open -> first decoded frame
		input: false,       // the server forwards our keyboard and pointer
		inputSent: 0,       // key / ptr messages sent
		sizeMode: '',       // the server's --size: page, fixed, guest
		sizeSent: '',       // the last "W H" asked for
	};
	window.hfeStats = stats;

	let ws = null;
	let decoder = null;
	let codec = null;
	let needKey = true;
	let selfReset = false; // we reset the decoder: deltas in flight are expected
	let lastSeq = null;
	let openedAt = 0;
	let clock = null; // { offset: server ms - page ms, rtt }
	const pongs = [];
	const pending = new Map(); // frame number -> { sendMs, hostMs }
	const latTotal = [], latHost = [], latViewer = [];

	function setStatus(text, ok) {
		statusEl.textContent = text;
		statusEl.className = ok ? 'ok' : '';
	}

	function send(text) {
		if (ws && ws.readyState === WebSocket.OPEN)
			ws.send(text);
	}

	function pushSample(arr, v) {
		arr.push(v);
		if (arr.length > LATENCY_WINDOW)
			arr.shift();
	}

	function mean(arr) {
		if (!arr.length)
			return null;
		return arr.reduce((a, b) => a + b, 0) / arr.length;
	}

	const hex2 = (b) => b.toString(16).toUpperCase().padStart(2, '0');

	// "avc1.PPCCLL" from the access unit's SPS (profile, constraint flags,
	// level), so the decoder is configured for what the host really sends.
	function codecFromSps(d) {
		for (let i = 0; i + 6 < d.length; i++) {
			if (d[i] !== 0 || d[i + 1] !== 0 || d[i + 2] !== 1)
				continue;
			const type = d[i + 3] & 0x1f;
			if (type === 7)
				return 'avc1.' + hex2(d[i + 4]) + hex2(d[i + 5]) + hex2(d[i + 6]);
			if (type === 1 || type === 5)
				break; // slices: no SPS in front
			i += 2;
		}
		return null;
	}

	function newDecoder() {
		if (decoder && decoder.state !== 'closed') {
			try {
				decoder.close();
			} catch (e) { /* already closed */ }
		}
		const d = new VideoDecoder({
			output: (frame) => onFrame(d, frame),
			error: (e) => onDecoderError(d, e),
		});
		decoder = d;
		codec = null;
		needKey = true;
		pending.clear();
	}

	// Start over from the next keyframe: frames queued in the old decoder
	// will never be acknowledged, so acknowledge them now.
	function resync() {
		stats.resets++;
		newDecoder();
		selfReset = true;
		if (lastSeq !== null)
			send('ack ' + lastSeq);
		send('keyframe');
	}

	function fail(e) {
		stats.decodeErrors++;
		stats.lastError = String((e && e.message) || e);
		console.error('hfe-viewer: decoder:', e);
		resync();
	}

	function onDecoderError(d, e) {
		if (d === decoder)
			fail(e);
	}

	function onFrame(d, frame) {
		if (d !== decoder) {
			frame.close();
			return;
		}
		const w = frame.displayWidth, h = frame.displayHeight;
		const seq = frame.timestamp;
		window.hfeDraw.frame(ctx, frame).then(() => drawn(d, seq, w, h)); // draw.js
	}

	function drawn(d, seq, w, h) {
		if (d !== decoder)
			return; // reset meanwhile: resync() acknowledged it
		const now = performance.now();
		stats.framesDecoded++;
		stats.width = w;
		stats.height = h;
		if (stats.firstFrameMs === null)
			stats.firstFrameMs = now - openedAt;
		const m = pending.get(seq);
		pending.delete(seq);
		if (m) {
			// The host clock is only comparable if the daemon runs on
			// the viewer's machine: ignore nonsense.
			const host = m.hostMs >= 0 && m.hostMs < 10000 ? m.hostMs : null;
			if (host !== null)
				pushSample(latHost, host);
			if (clock) {
				const viewer = now + clock.offset - m.sendMs;
				pushSample(latViewer, viewer);
				pushSample(latTotal, viewer + (host || 0));
			}
		}
		send('ack ' + seq);
	}

	function onBinary(buf) {
		if (buf.byteLength < HEADER_MIN)
			return;
		const dv = new DataView(buf);
		const version = dv.getUint8(0);
		const hlen = dv.getUint16(2, true);
		if (version !== HEADER_VERSION || hlen < HEADER_MIN || hlen > buf.byteLength) {
			stats.lastError = 'unknown message version ' + version;
			return;
		}
		const key = (dv.getUint8(1) & FLAG_KEY) !== 0;
		const seq = dv.getUint32(4, true);
		const pts = dv.getBigInt64(8, true);
		const recv = dv.getBigInt64(16, true);
		const sent = dv.getBigInt64(24, true);
		const data = new Uint8Array(buf, hlen);

		stats.messages++;
		stats.bytes += buf.byteLength;
		stats.framesReceived++;
		lastSeq = seq;

		if (needKey && !key) {
			// Cannot be decoded ("A key frame is required"). The server
			// sends none before a page's first keyframe.
			if (selfReset)
				stats.discarded++;
			else
				stats.deltaBeforeKey++;
			send('ack ' + seq);
			return;
		}
		if (key) {
			stats.keyframes++;
			selfReset = false;
			const c = codecFromSps(data) || FALLBACK_CODEC;
			if (c !== codec) {
				try {
					decoder.configure({ codec: c, optimizeForLatency: true });
				} catch (e) {
					send('ack ' + seq);
					fail(e);
					return;
				}
				codec = c;
				stats.codec = c;
			}
			needKey = false;
		}
		pending.set(seq, {
			sendMs: Number(sent / 1000n) / 1000,
			hostMs: Number(recv - pts) / 1e6,
		});
		try {
			decoder.decode(new EncodedVideoChunk({
				type: key ? 'key' : 'delta',
				timestamp: seq,
				data,
			}));
		} catch (e) {
			send('ack ' + seq);
			fail(e);
		}
	}

	// Clock sync, NTP style: the best of the last pings (smallest round trip)
	// gives the offset between the server's CLOCK_MONOTONIC and ours.
	function onPong(msg) {
		const rtt = performance.now() - msg.client;
		if (!(rtt >= 0))
			return;
		pongs.push({ rtt, offset: msg.server - (msg.client + rtt / 2) });
		if (pongs.length > PONG_WINDOW)
			pongs.shift();
		clock = pongs.reduce((a, b) => (b.rtt < a.rtt ? b : a));
		stats.clockRttMs = clock.rtt;
		stats.clockOffsetMs = clock.offset;
	}

	function onText(text) {
		let msg;
		try {
			msg = JSON.parse(text);
		} catch (e) {
			return;
		}
		if (msg.type === 'pong') {
			onPong(msg);
		} else if (msg.type === 'cursor') {
			window.hfeCursor.onMessage(msg); // cursor.js
			stats.cursor = window.hfeCursor.state;
		} else if (msg.type === 'upstream') {
			stats.upstream = !!msg.connected;
			if (stats.input && !msg.input)
				releaseAll();
			stats.input = !!msg.input;
			stats.sizeMode = msg.size || '';
			stats.sizeSent = ''; // a new upstream: ask again
			sendSize();
			stats.address = msg.address || '';
			stats.scanout = msg.scanout;
			if (!msg.connected)
				needKey = true;
			updateStatus();
		}
	}

	function ping() {
		send('ping ' + performance.now().toFixed(3));
	}

	function connect() {
		// Beside the page, under the same token: /TOKEN/ws.
		const url = new URL('ws', location.href);
		url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
		ws = new WebSocket(url.href);
		ws.binaryType = 'arraybuffer';
		ws.onopen = () => {
			stats.connected = true;
			stats.refused = false;
			openedAt = performance.now();
			newDecoder();
			selfReset = false;
			for (let i = 0; i < 5; i++)
				setTimeout(ping, 50 + 150 * i);
			updateStatus();
		};
		ws.onmessage = (ev) => {
			if (typeof ev.data === 'string')
				onText(ev.data);
			else
				onBinary(ev.data);
		};
		ws.onclose = (ev) => {
			const was = stats.connected;
			stats.connected = false;
			stats.upstream = false;
			ws = null;
			setStatus('viewer server gone' + (ev.code ? ' (' + ev.code + ')' : '') +
				  ': reconnecting…');
			if (!was)
				checkRefused();
			setTimeout(connect, was ? 500 : 1000);
		};
	}

	// A WebSocket that never opened: if the viewer refuses our own stats too,
	// this URL's token is not its token (it was restarted with a new one).
	function checkRefused() {
		fetch('stats.json', { cache: 'no-store' }).then((r) => {
			stats.refused = r.status === 403;
			updateStatus();
		}, () => {});
	}

	function updateStatus() {
		if (!stats.connected && stats.refused)
			setStatus('the viewer refuses this URL (restarted with another token?): ' +
				  'open the URL it printed');
		else if (!stats.connected)
			setStatus('connecting…');
		else if (!stats.upstream)
			setStatus('waiting for the host' +
				  (stats.address ? ' at ' + stats.address : ''));
		else if (needKey)
			setStatus('waiting for a keyframe…');
		else
			setStatus('live: scanout ' + stats.scanout, true);
	}

	const fmt = (v, digits) => (v === null ? '–' : v.toFixed(digits));

	let tickAt = performance.now(), tickDecoded = 0, tickBytes = 0;
	function tick() {
		const now = performance.now();
		const dt = (now - tickAt) / 1000;
		if (dt > 0) {
			stats.fps = (stats.framesDecoded - tickDecoded) / dt;
			stats.kbps = ((stats.bytes - tickBytes) * 8) / dt / 1000;
		}
		tickAt = now;
		tickDecoded = stats.framesDecoded;
		tickBytes = stats.bytes;
		stats.latencyMs = mean(latTotal);
		stats.hostMs = mean(latHost);
		stats.viewerMs = mean(latViewer);
		updateStatus();
		const size = stats.width
			? stats.width + '×' + stats.height + ' ' + stats.codec + ' · ' : '';
		statsEl.textContent = size +
			stats.fps.toFixed(1) + ' fps · ' +
			(stats.kbps / 1000).toFixed(2) + ' Mbit/s · latency ' +
			fmt(stats.latencyMs, 1) + ' ms (capture→server ' + fmt(stats.hostMs, 1) +
			', server→decoded ' + fmt(stats.viewerMs, 1) + ')' +
			(stats.decodeErrors ? ' · ' + stats.decodeErrors + ' decoder errors' : '');
	}

	// ---- size: the page's picture area becomes the output's mode ----

	function sendSize() {
		if (!stats.input || stats.sizeMode !== 'page')
			return;
		const w = Math.round(canvas.clientWidth), h = Math.round(canvas.clientHeight);
		const s = w + ' ' + h;
		if (!(w > 0 && h > 0) || s === stats.sizeSent)
			return;
		stats.sizeSent = s;
		send('size ' + s);
	}

	let sizeTimer = null;
	window.addEventListener('resize', () => {
		clearTimeout(sizeTimer);
		sizeTimer = setTimeout(sendSize, SIZE_DEBOUNCE_MS);
	});

	// ---- input ----

	// KeyboardEvent.code -> Linux evdev key code (linux/input-event-codes.h).
	const EVDEV = (() => {
		const t = {
			Escape: 1, Minus: 12, Equal: 13, Backspace: 14, Tab: 15, BracketLeft: 26,
			BracketRight: 27, Enter: 28, ControlLeft: 29, Semicolon: 39, Quote: 40,
			Backquote: 41, ShiftLeft: 42, Backslash: 43, Comma: 51, Period: 52, Slash: 53,
			ShiftRight: 54, NumpadMultiply: 55, AltLeft: 56, Space: 57, CapsLock: 58,
			NumLock: 69, ScrollLock: 70, Numpad7: 71, Numpad8: 72, Numpad9: 73,
			NumpadSubtract: 74, Numpad4: 75, Numpad5: 76, Numpad6: 77, NumpadAdd: 78,
			Numpad1: 79, Numpad2: 80, Numpad3: 81, Numpad0: 82, NumpadDecimal: 83,
			IntlBackslash: 86, F11: 87, F12: 88, IntlRo: 89, Convert: 92, KanaMode: 93,
			NonConvert: 94, NumpadEnter: 96, ControlRight: 97, NumpadDivide: 98,
			PrintScreen: 99, AltRight: 100, Home: 102, ArrowUp: 103, PageUp: 104,
			ArrowLeft: 105, ArrowRight: 106, End: 107, ArrowDown: 108, PageDown: 109,
			Insert: 110, Delete: 111, AudioVolumeMute: 113, AudioVolumeDown: 114,
			AudioVolumeUp: 115, Power: 116, NumpadEqual: 117, Pause: 119, NumpadComma: 121,
			Lang1: 122, Lang2: 123, IntlYen: 124, MetaLeft: 125, MetaRight: 126,
			ContextMenu: 127,
		};
		'1234567890'.split('').forEach((d, i) => { t['Digit' + d] = 2 + i; });
		const rows = [['QWERTYUIOP', 16], ['ASDFGHJKL', 30], ['ZXCVBNM', 44]];
		for (const [keys, first] of rows)
			keys.split('').forEach((k, i) => { t['Key' + k] = first + i; });
		for (let i = 1; i <= 10; i++)
			t['F' + i] = 58 + i;
		for (let i = 13; i <= 24; i++)
			t['F' + i] = 170 + i;
		return t;
	})();
	const held = new Set(); // evdev codes pressed here, not yet released
	let buttons = 0, pointerX = 0, pointerY = 0, wheelY = 0;

	function sendInput(text) {
		if (!stats.input)
			return;
		send(text);
		stats.inputSent++;
	}

	function sendPointer(wy) {
		sendInput('ptr ' + pointerX + ' ' + pointerY + ' ' + buttons + ' ' + wy + ' 0');
	}

	function releaseAll() {
		for (const code of held)
			sendInput('key ' + code + ' 0');
		held.clear();
		if (buttons) {
			buttons = 0;
			sendPointer(0);
		}
	}

	function onKey(e, down) {
		const code = EVDEV[e.code];
		if (!stats.input || code === undefined)
			return;
		e.preventDefault(); // the VM's, not the browser's
		if (down && e.repeat)
			return; // the guest repeats held keys itself
		if (!down && !held.has(code))
			return;
		if (down)
			held.add(code);
		else
			held.delete(code);
		sendInput('key ' + code + ' ' + (down ? 1 : 0));
	}

	// Where on the stream: the canvas is letterboxed (object-fit: contain).
	function locate(e) {
		const r = canvas.getBoundingClientRect();
		const scale = Math.min(r.width / canvas.width, r.height / canvas.height);
		if (!(scale > 0))
			return false;
		const x = (e.clientX - r.left - (r.width - canvas.width * scale) / 2) / scale;
		const y = (e.clientY - r.top - (r.height - canvas.height * scale) / 2) / scale;
		pointerX = Math.min(canvas.width - 1, Math.max(0, Math.floor(x)));
		pointerY = Math.min(canvas.height - 1, Math.max(0, Math.floor(y)));
		return true;
	}

	function onPointer(e) {
		if (!stats.input || !locate(e))
			return;
		e.preventDefault();
		if (e.type === 'pointerdown')
			canvas.setPointerCapture(e.pointerId); // its release comes to us too
		window.hfeCursor.local(pointerX, pointerY); // cursor.js: drawn here, now
		// At once: Chromium already sends pointermove once per animation
		// frame, and waiting for the next one cost up to a frame.
		buttons = e.buttons & 0x1f;
		sendPointer(0);
	}

	function onWheel(e) {
		if (!stats.input || !locate(e))
			return;
		e.preventDefault();
		// a notch is ~100 px (deltaMode 0) or 3 lines (deltaMode 1)
		wheelY += e.deltaMode === 1 ? e.deltaY / 3
			: e.deltaMode === 2 ? e.deltaY * 10 : e.deltaY / 100;
		const n = Math.max(-64, Math.min(64, Math.trunc(wheelY)));
		if (n) {
			wheelY -= n;
			sendPointer(n);
		}
	}

	window.addEventListener('keydown', (e) => onKey(e, true));
	window.addEventListener('keyup', (e) => onKey(e, false));
	window.addEventListener('blur', releaseAll);
	document.addEventListener('visibilitychange', () => {
		if (document.hidden)
			releaseAll();
	});
	for (const t of ['pointermove', 'pointerdown', 'pointerup'])
		canvas.addEventListener(t, onPointer);
	canvas.addEventListener('wheel', onWheel, { passive: false });
	canvas.addEventListener('contextmenu', (e) => {
		if (stats.input)
			e.preventDefault();
	});

	if (typeof VideoDecoder === 'undefined') {
		stats.lastError = window.isSecureContext
			? 'this browser has no WebCodecs VideoDecoder'
			: 'WebCodecs needs a secure context: open the page as ' +
			  'http://localhost:PORT or http://127.0.0.1:PORT, or from ' +
			  'another machine over HTTPS (hfe-viewer --tls-cert) or an SSH tunnel';
		setStatus(stats.lastError);
		return;
	}
	setInterval(tick, 1000);
	setInterval(ping, 2000);
	setStatus('connecting…');
	connect();
})();
