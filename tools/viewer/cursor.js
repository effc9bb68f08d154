// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * hfe-viewer's page: the VM's cursor, drawn by the page itself (docs/viewer.md,
 * "cursor" messages). The shape becomes a small canvas laid over the stream's
 * canvas, moved by each position scaled to where the picture is shown
 * (object-fit: contain letterboxes it), so a moving cursor costs the host no
 * encode and the page no decode. While the VM's cursor is shown over the
 * picture the local pointer is hidden there, so one cursor is seen.
 * viewer.js hands it the messages: window.hfeCursor.onMessage(msg).
 */
'use strict';

(() => {
	const screen = document.getElementById('screen');
	const el = document.createElement('canvas');
	el.id = 'cursor';
	el.style.cssText = 'position: fixed; pointer-events: none; display: none; ' +
		'image-rendering: pixelated; z-index: 1;';
	document.body.appendChild(el);

	const state = { shapes: 0, positions: 0, visible: false, x: 0, y: 0, hotX: 0, hotY: 0,
		width: 0, height: 0 };

	function setShape(s) {
		const w = s.width | 0, h = s.height | 0;
		if (w < 1 || h < 1 || w > 256 || h > 256)
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
		el.width = w;
		el.height = h;
		el.getContext('2d').putImageData(img, 0, 0);
		state.width = w;
		state.height = h;
		state.hotX = s.hot_x | 0;
		state.hotY = s.hot_y | 0;
		state.shapes++;
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

	function onMessage(msg) {
		if (msg.shape)
			setShape(msg.shape);
		if (typeof msg.x === 'number') {
			state.x = msg.x;
			state.y = msg.y;
			state.visible = !!msg.visible;
			state.positions++;
		}
		place();
	}

	window.addEventListener('resize', place);
	// The stream's size can change under a shown cursor.
	new ResizeObserver(place).observe(screen);
	window.hfeCursor = { onMessage, state, place };
})();
