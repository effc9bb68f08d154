// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * hfe-viewer's page: the VM's cursor, drawn by the page itself (docs/viewer.md,
 * "cursor" messages). The shape becomes a small canvas laid over the stream's
 * canvas, moved by each position scaled to where the picture is shown
 * (object-fit: contain letterboxes it), so a moving cursor costs the host no
 * encode and the page no decode. While the VM's cursor is shown over the
 * picture the local pointer is hidden there, so one cursor is seen.
 * viewer.js hands it the messages: window.hfeCursor.onMessage(msg).
 *
 * A shape comes in full once, with an id, and then as its id alone
 * (`shape_id`): the decoded shapes are kept by id, one per id % SLOTS (the
 * viewer's ids alive at once differ there), and an id not kept is ignored.
 *
 * While this page drives the pointer (input on), the cursor follows the local
 * pointer at once (window.hfeCursor.local(x, y), from pointermove), without
 * waiting for the host's position, which comes a guest round trip later:
 * motion-to-photon is the page's own. The image's top-left is then the
 * pointer plus an offset: minus the shape's hot spot at first, then learned
 * from the host (a guest may place the image elsewhere than the hot spot says,
 * e.g. weston's hot spot over a plane whose hot spot is 0,0). Host positions
 * that arrive while the pointer moves are behind it and are not shown; once
 * both have been still for SETTLE_MS the latest one is: near the pointer it only
 * refines the offset (it is where the cursor already is, so nothing jumps),
 * far from it the guest moved the cursor itself, and it is shown there.
 */
'use strict';

(() => {
	const screen = document.getElementById('screen');
	const el = document.createElement('canvas');
	el.id = 'cursor';
	el.style.cssText = 'position: fixed; pointer-events: none; display: none; ' +
		'image-rendering: pixelated; z-index: 1;';
	document.body.appendChild(el);

	const SETTLE_MS = 500;
	const SLOTS = 16; // hfe-viewer's CURSOR_SLOTS
	const MAX_OFFSET = 64; // farther from the pointer: the guest moved the cursor

	const state = { shapes: 0, shapeRefs: 0, unknownRefs: 0, shapeId: null, positions: 0, visible: false, x: 0, y: 0, hotX: 0, hotY: 0,
		width: 0, height: 0, localMoves: 0, offsetX: 0, offsetY: 0 };
	let localAt = -Infinity; // the last local move (performance.now())
	let pointer = null; // { x, y }: the local pointer, in stream pixels
	let host = null; // { x, y }: the host's latest position
	let settleTimer = null;
	const kept = new Array(SLOTS).fill(null); // { id, img, hotX, hotY }

	const validId = (id) => Number.isSafeInteger(id) && id >= 0;

	function show(k) {
		el.width = k.img.width;
		el.height = k.img.height;
		el.getContext('2d').putImageData(k.img, 0, 0);
		state.width = k.img.width;
		state.height = k.img.height;
		state.hotX = k.hotX;
		state.hotY = k.hotY;
		state.offsetX = -state.hotX;
		state.offsetY = -state.hotY;
		state.shapeId = k.id;
	}

	function setShape(s) {
		const w = s.width | 0, h = s.height | 0;
		if (w < 1 || h < 1 || w > 256 || h > 256 || typeof s.bgra !== 'string')
			return;
		const bin = atob(s.bgra);
		if (bin.length !== w * h * 4)
			return;
		const img = new ImageData(w, h);
		for (let i = 0; i < bin.length; i += 4) { // B,G,R,A -> R,G,B,A
			img.data[i] = bin.charCodeAt(i + 2);
			img.data[i + 1] = bin.charCodeAt(i + 1);
			img.data[i + 2] = bin.charCodeAt(i);
			img.data[i + 3] = bin.charCodeAt(i + 3);
		}
		const k = { id: validId(s.id) ? s.id : null, img, hotX: s.hot_x | 0, hotY: s.hot_y | 0 };
		if (k.id !== null)
			kept[k.id % SLOTS] = k;
		show(k);
		state.shapes++;
	}

	// A shape sent before, by its id; one not kept (never trust the message) is ignored.
	function useShape(id) {
		const k = validId(id) ? kept[id % SLOTS] : null;
		if (!k || k.id !== id) {
			state.unknownRefs++;
			return;
		}
		show(k);
		state.shapeRefs++;
	}

	// Stream pixels -> the page: the same letterbox arithmetic as the pointer's.
	function place() {
		const show = state.visible && state.width > 0 && screen.width > 0;
		el.style.display = show ? 'block' : 'none';
		screen.style.cursor = show ? 'none' : '';
		if (!show)
			return;
		const r = screen.getBoundingClientRect();
		const scale = Math.min(r.width / screen.width, r.height / screen.height);
		const left = r.left + (r.width - screen.width * scale) / 2;
		const top = r.top + (r.height - screen.height * scale) / 2;
		el.style.left = (left + state.x * scale) + 'px';
		el.style.top = (top + state.y * scale) + 'px';
		el.style.width = (state.width * scale) + 'px';
		el.style.height = (state.height * scale) + 'px';
	}

	// The host's latest position, once it and the pointer are still: near the
	// pointer it refines the offset, else the guest moved the cursor.
	function settle() {
		settleTimer = null;
		if (!host)
			return;
		const dx = host.x - (pointer ? pointer.x : 0), dy = host.y - (pointer ? pointer.y : 0);
		if (pointer && Math.abs(dx) <= MAX_OFFSET && Math.abs(dy) <= MAX_OFFSET) {
			state.offsetX = dx;
			state.offsetY = dy;
		} else {
			pointer = null; // until the next local move
		}
		state.x = host.x;
		state.y = host.y;
		place();
	}

	function onMessage(msg) {
		if (msg.shape && typeof msg.shape === 'object')
			setShape(msg.shape);
		else if ('shape_id' in msg)
			useShape(msg.shape_id);
		if (typeof msg.x === 'number') {
			host = { x: msg.x, y: msg.y };
			state.visible = !!msg.visible;
			state.positions++;
			if (!settleTimer && performance.now() - localAt >= SETTLE_MS) {
				settle();
				return;
			}
			quiet();
		}
		place();
	}

	// Settle once neither the pointer nor the host has moved for SETTLE_MS:
	// the host's last position is then its answer to the pointer's last.
	function quiet() {
		clearTimeout(settleTimer);
		settleTimer = setTimeout(settle, SETTLE_MS);
	}

	// The local pointer moved to x, y (stream pixels): the cursor goes there now.
	function local(x, y) {
		pointer = { x, y };
		localAt = performance.now();
		state.localMoves++;
		state.x = x + state.offsetX;
		state.y = y + state.offsetY;
		quiet();
		place();
	}

	window.addEventListener('resize', place);
	// The stream's size can change under a shown cursor.
	new ResizeObserver(place).observe(screen);
	window.hfeCursor = { onMessage, local, state, place };
})();
