// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Loaded into both pages before their own scripts (Playwright's init script):
 * the measuring side of bench/desktop-vs-vnc, one clock (performance.now()).
 *  - Bytes on the wire: every WebSocket's received (and sent) payload bytes,
 *    and of the received how many came in text messages.
 *  - Input-to-photon: a probe is armed with a rectangle of the picture (in the
 *    picture's own pixels) and the DOM event it waits for. A window listener
 *    in the capture phase (registered before the page's own) stamps the event;
 *    every drawImage / putImageData on the page's screen canvas (the canvas
 *    the probe names: hfe-viewer's #screen, noVNC's target canvas) is
 *    followed by a read of the rectangle, and the first draw after the event
 *    that changed more than minPx of its pixels (from their values when the
 *    probe was armed) stamps the paint. The resolution is the draw call's, not
 *    a polling interval; the compositor shows it at its next frame, the same
 *    for both pages.
 *  - hfe-viewer's page only: each access unit's time in the VideoDecoder, its
 *    size and whether it is a keyframe.
 *  - The latency split: the time of every message received (the probe keeps
 *    the first after the event and the last before the paint); on
 *    hfe-viewer's page also each access unit's header stamps (the host's
 *    damage, the viewer's receipt and send, on the machine's monotonic clock,
 *    which the page's clock sync maps to ours: hfeStats.clockOffsetMs), its
 *    arrival and its decoder output, so the AU that made the paint is known.
 *  - Cursor: a software cursor (weston's pixman renderer draws it into the
 *    picture) is seen by the rectangle; on hfe-viewer's page the cursor
 *    overlay (#cursor) being moved (its style changed to another position)
 *    also stamps the paint, whichever comes first.
 */
'use strict';

(() => {
	const B = window.__bench = { rx: 0, rxText: 0, tx: 0, rxMsgs: 0, probe: null,
		screenSel: null };
	const size = (d) => (typeof d === 'string' ? d.length
		: d instanceof ArrayBuffer ? d.byteLength : d && d.size !== undefined ? d.size : 0);

	// The page's WebSocket is the browser's own (noVNC checks its prototype's
	// properties), with a listener added and send wrapped.
	B.au = new Map(); // hfe-viewer's frame number -> its stamps (ms)
	B.lastRxAt = null;
	const NativeWebSocket = window.WebSocket;
	function CountedWebSocket(...args) {
		const ws = new NativeWebSocket(...args);
		ws.addEventListener('message', (e) => {
			const now = performance.now();
			B.rx += size(e.data);
			if (typeof e.data === 'string')
				B.rxText += e.data.length;
			B.rxMsgs++;
			B.lastRxAt = now;
			const p = B.probe;
			if (p && p.tEvent !== null && p.tFirstRx === null)
				p.tFirstRx = now;
			if (window.hfeStats && e.data instanceof ArrayBuffer && e.data.byteLength >= 32) {
				// docs/viewer.md: seq, host damage (pts), viewer receipt, viewer send
				const dv = new DataView(e.data);
				B.au.set(dv.getUint32(4, true), { damage: Number(dv.getBigInt64(8, true)) / 1e6,
					viewerIn: Number(dv.getBigInt64(16, true)) / 1e6,
					viewerOut: Number(dv.getBigInt64(24, true)) / 1e6, rx: now });
				if (B.au.size > 2000)
					B.au.delete(B.au.keys().next().value);
			}
		});
		return ws;
	}
	CountedWebSocket.prototype = NativeWebSocket.prototype;
	for (const k of ['CONNECTING', 'OPEN', 'CLOSING', 'CLOSED'])
		CountedWebSocket[k] = NativeWebSocket[k];
	window.WebSocket = CountedWebSocket;
	const nativeSend = NativeWebSocket.prototype.send;
	NativeWebSocket.prototype.send = function (d) {
		B.tx += size(d);
		return nativeSend.call(this, d);
	};

	// hfe-viewer's page: how long each access unit spends in the VideoDecoder
	// (decode() -> its output callback), to tell the decoder from the rest.
	B.decodeMs = [];
	B.aus = []; // [bytes, 1 if a keyframe] of each access unit given to the decoder
	if (window.VideoDecoder) {
		const NativeDecoder = window.VideoDecoder;
		const queued = new Map(); // timestamp -> decode() time
		const nativeDecode = NativeDecoder.prototype.decode;
		NativeDecoder.prototype.decode = function (chunk) {
			queued.set(chunk.timestamp, performance.now());
			B.aus.push([chunk.byteLength, chunk.type === 'key' ? 1 : 0]);
			return nativeDecode.call(this, chunk);
		};
		window.VideoDecoder = function (init) {
			return new NativeDecoder({ ...init, output: (frame) => {
				const t = queued.get(frame.timestamp);
				const now = performance.now();
				if (t !== undefined) {
					B.decodeMs.push(now - t);
					queued.delete(frame.timestamp);
				}
				const au = B.au.get(frame.timestamp);
				if (au)
					au.decoded = now;
				B.outSeq = frame.timestamp; // the page draws it in this call
				init.output(frame);
				B.outSeq = null;
			} });
		};
		window.VideoDecoder.prototype = NativeDecoder.prototype;
		window.VideoDecoder.isConfigSupported = NativeDecoder.isConfigSupported;
	}

	const screen = () => (B.screenSel ? document.querySelector(B.screenSel) : null);

	function grab(p) {
		const c = screen();
		if (!c || c.width < p.x + p.w || c.height < p.y + p.h)
			return null;
		return c.getContext('2d').getImageData(p.x, p.y, p.w, p.h).data;
	}

	function changed(a, b) {
		let n = 0;
		for (let i = 0; i < a.length; i += 4)
			n += Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) +
				Math.abs(a[i + 2] - b[i + 2]) > 60;
		return n;
	}

	// Arms a probe: { x, y, w, h, on (the DOM event type), minPx, cursor (also
	// watch hfe-viewer's cursor overlay) }.
	B.arm = (p) => {
		B.probe = { ...p, tEvent: null, tPaint: null, px: 0, draws: 0, how: '',
			tFirstRx: null, tRx: null, seq: null };
		B.probe.base = grab(p);
		const el = document.getElementById('cursor');
		B.probe.cursorBase = el ? el.style.left + ',' + el.style.top : '';
		if (!B.probe.base)
			B.probe = null;
		return !!B.probe;
	};
	B.result = () => {
		const p = B.probe;
		return p && { tEvent: p.tEvent, tPaint: p.tPaint, px: p.px, draws: p.draws, how: p.how,
			tFirstRx: p.tFirstRx, tRx: p.tRx, drawMs: p.drawMs, grabMs: p.grabMs, au: p.seq !== null ? B.au.get(p.seq) : null,
			clockOffsetMs: window.hfeStats ? window.hfeStats.clockOffsetMs : null };
	};

	for (const type of ['keydown', 'pointerdown', 'wheel', 'pointermove'])
		window.addEventListener(type, (e) => {
			const p = B.probe;
			if (p && p.on === e.type && p.tEvent === null)
				p.tEvent = performance.now();
		}, { capture: true, passive: true });

	function afterDraw(ctx, drawMs) {
		const p = B.probe;
		if (!p || p.tEvent === null || p.tPaint !== null || ctx.canvas !== screen())
			return;
		p.draws++;
		const t = performance.now();
		const now = grab(p);
		const n = now ? changed(now, p.base) : 0;
		if (n >= p.minPx) {
			p.tPaint = performance.now();
			p.drawMs = drawMs; // the draw call itself
			p.grabMs = p.tPaint - t; // the probe's own read of the rectangle
			p.px = n;
			p.how = 'picture';
			p.tRx = B.lastRxAt; // the message that brought it (noVNC draws as it parses)
			// the frame being drawn: in the decoder's output callback, or
			// later by hfe-viewer's draw.js
			p.seq = B.outSeq !== undefined && B.outSeq !== null ? B.outSeq
				: window.hfeDraw ? window.hfeDraw.drawing : null;
		}
	}
	const proto = CanvasRenderingContext2D.prototype;
	for (const name of ['drawImage', 'putImageData']) {
		const native = proto[name];
		proto[name] = function (...args) {
			const t = performance.now();
			const r = native.apply(this, args);
			afterDraw(this, performance.now() - t);
			return r;
		};
	}

	new MutationObserver(() => {
		const p = B.probe;
		const el = document.getElementById('cursor');
		if (!p || !p.cursor || !el || p.tEvent === null || p.tPaint !== null)
			return;
		if (el.style.display !== 'none' && el.style.left + ',' + el.style.top !== p.cursorBase) {
			p.tPaint = performance.now();
			p.how = 'overlay';
		}
	}).observe(document, { subtree: true, attributes: true, attributeFilter: ['style'] });
})();
