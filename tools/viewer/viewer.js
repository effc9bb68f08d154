// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * hfe-viewer's page: receive H.264 access units over a WebSocket, decode them
 * with WebCodecs and draw them on the canvas. The message format and what the
 * numbers mean are in docs/viewer.md.
 *
 * Every decoded (or discarded) frame is acknowledged ("ack SEQ"); the server
 * uses the acks to skip a page that falls behind and resync it with an IDR.
 * window.hfeStats holds the counters (tests/browser reads them).
 */
'use strict';

(() => {
	const HEADER_VERSION = 1;
	const HEADER_MIN = 32;
	const FLAG_KEY = 0x01;
	const FALLBACK_CODEC = 'avc1.42E01E'; // constrained baseline 3.0
	const LATENCY_WINDOW = 60; // frames averaged
	const PONG_WINDOW = 10;

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
		firstFrameMs: null, // WebSocket open -> first decoded frame
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
		const now = performance.now();
		const w = frame.displayWidth, h = frame.displayHeight;
		if (canvas.width !== w || canvas.height !== h) {
			canvas.width = w;
			canvas.height = h;
		}
		ctx.drawImage(frame, 0, 0, w, h);
		const seq = frame.timestamp;
		frame.close();

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
		} else if (msg.type === 'upstream') {
			stats.upstream = !!msg.connected;
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
