// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * hfe-viewer's page: a decoded frame onto the canvas, converting only what
 * changed. drawImage(frame) converts the whole frame from YUV whatever the
 * rectangle asked for: 4 ms at 1280x800 and 9-14 ms at 1920x1080 in a
 * Chromium without GPU (bench/desktop-vs-vnc), for a typed key that changes a
 * few macroblocks. So an I420 frame (the software decoder's) is copied as it
 * is (no conversion), compared with the last one drawn, and only the box
 * that differs is converted (copyTo RGBA) and put: ~0.2 ms for a glyph. The
 * comparison is exact (all three planes), so the canvas always equals the
 * frame. A large box, another format (a GPU decoder's frames, which the GPU
 * converts cheaply), the first frame or a new size: drawImage as before. The
 * comparison stops as soon as the box passes MAX_BOX (a scroll, a new
 * window): a large change costs the copy and the rows compared until then,
 * not all three planes (bench/viewer-draw.mjs).
 * The canvas takes the frame's size (which clears it: a full draw).
 * viewer.js: window.hfeDraw.frame(ctx, frame) -> a Promise, resolved once
 * drawn with how ('full', 'box', 'unchanged'; frames are drawn in order,
 * each closed after); window.hfeDraw.stats counts them.
 */
'use strict';

(() => {
	const MAX_BOX = 0.25; // of the frame's area: beyond, one drawImage is cheaper
	const stats = { full: 0, boxes: 0, unchanged: 0 };
	// per canvas: the frame drawn last ({ w, h, data: Uint8Array, layout }),
	// the copy before it (reused for the next), the draws in order
	const canvases = new WeakMap();

	// The box (even-aligned: I420's chroma is 2x2) of the pixels whose Y, U or
	// V differ between two copies with the same layout, null if none, or
	// LARGE as soon as it covers more than maxArea pixels (the rest is not
	// compared). Rows are compared 4 bytes at a time (the layout's offsets and
	// strides are multiples of 4), so a box edge can be up to 3 pixels (6 in
	// chroma) wide of the change: a little more is converted, never less. A
	// changed row is scanned from both ends, not through its middle.
	const LARGE = 'large';
	function changedBox(a, b, layout, w, h, maxArea) {
		const a32 = new Uint32Array(a.buffer, a.byteOffset, a.byteLength >> 2);
		const b32 = new Uint32Array(b.buffer, b.byteOffset, b.byteLength >> 2);
		let x0 = w, y0 = h, x1 = -1, y1 = -1;
		for (let p = 0; p < 3; p++) {
			const sub = p ? 2 : 1; // chroma is half size both ways
			const pw = p ? (w + 1) >> 1 : w, ph = p ? (h + 1) >> 1 : h;
			const words = (pw + 3) >> 2; // the last may reach into the padding
			const { offset, stride } = layout[p];
			for (let y = 0; y < ph; y++) {
				const row = (offset + y * stride) >> 2;
				let first = 0;
				while (first < words && a32[row + first] === b32[row + first])
					first++;
				if (first === words)
					continue;
				let lastW = words - 1;
				while (a32[row + lastW] === b32[row + lastW])
					lastW--;
				x0 = Math.min(x0, first * 4 * sub);
				x1 = Math.max(x1, (lastW * 4 + 3) * sub + sub - 1);
				y0 = Math.min(y0, y * sub);
				y1 = Math.max(y1, y * sub + sub - 1);
				if ((x1 - x0 + 1) * (y1 - y0 + 1) > maxArea)
					return LARGE;
			}
		}
		if (x1 < 0)
			return null;
		x0 &= ~1;
		y0 &= ~1;
		x1 = Math.min(w - 1, x1 | 1);
		y1 = Math.min(h - 1, y1 | 1);
		return { x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1 };
	}

	const aligned = (layout) => layout.every((l) => l.offset % 4 === 0 && l.stride % 4 === 0);

	async function draw(ctx, frame, st) {
		const w = frame.displayWidth, h = frame.displayHeight;
		window.hfeDraw.drawing = frame.timestamp; // bench/desktop-vs-vnc's probe
		const full = () => {
			ctx.drawImage(frame, 0, 0, w, h);
			stats.full++;
			return 'full';
		};
		if (ctx.canvas.width !== w || ctx.canvas.height !== h) {
			ctx.canvas.width = w; // cleared: all of it is drawn
			ctx.canvas.height = h;
			st.last = null;
		}
		if (frame.format !== 'I420' || w !== frame.visibleRect.width ||
		    h !== frame.visibleRect.height) {
			st.last = null;
			return full();
		}
		const size = frame.allocationSize();
		const data = st.spare && st.spare.length === size ? st.spare : new Uint8Array(size);
		st.spare = null;
		const layout = await frame.copyTo(data);
		const prev = st.last;
		st.last = { w, h, data, layout };
		if (!prev || prev.w !== w || prev.h !== h || prev.data.length !== size ||
		    !aligned(layout) || prev.layout.some((l, i) => l.offset !== layout[i].offset ||
							   l.stride !== layout[i].stride))
			return full();
		const box = changedBox(prev.data, data, layout, w, h, MAX_BOX * w * h);
		st.spare = prev.data;
		if (!box) {
			stats.unchanged++;
			return 'unchanged';
		}
		if (box === LARGE || box.width * box.height > MAX_BOX * w * h)
			return full();
		const rgba = new Uint8ClampedArray(box.width * box.height * 4);
		await frame.copyTo(rgba, { rect: box, format: 'RGBA' });
		ctx.putImageData(new ImageData(rgba, box.width, box.height), box.x, box.y);
		stats.boxes++;
		return 'box';
	}

	// Draws frame (and closes it) after the frames before it.
	function frame(ctx, f) {
		let st = canvases.get(ctx);
		if (!st)
			canvases.set(ctx, st = { last: null, spare: null, queue: Promise.resolve() });
		const done = st.queue.then(() => draw(ctx, f, st)).catch((e) => {
			st.last = null; // start over with a full draw
			console.error('hfe-viewer: draw:', e);
		}).finally(() => {
			window.hfeDraw.drawing = null;
			f.close();
		});
		st.queue = done;
		return done;
	}

	window.hfeDraw = { frame, stats, drawing: null };
})();
