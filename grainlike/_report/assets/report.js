// The timeline and the utilisation chart of a grainlike report.
//
// The canvas paints every run, so that zoom and pan stay fast for 100,000 runs.  Each run also
// has one element in the page, div.bar with data-task-id, laid over the canvas where the run's
// first lane is drawn; only the bars in view are positioned and shown (when there are few
// enough to be worth it), and the others stay in the page, hidden.
"use strict";
(function () {
  const began = performance.now();
  const model = JSON.parse(document.getElementById("run-model").textContent);
  const columns = model.runs;
  const count = columns.task.length;
  const OUTCOME = model.outcomes; // finished, failed, retried, cancelled, unfinished
  const FAILED = OUTCOME.indexOf("failed");
  const RETRIED = OUTCOME.indexOf("retried");
  const FINISHED = OUTCOME.indexOf("finished");

  // -- the runs, decoded from their compact columns -------------------------------------
  const task = new Float64Array(count);
  const start = new Float64Array(count);
  const end = new Float64Array(count);
  const firstLane = new Int32Array(count);
  {
    let at = 0;
    let id = 0;
    for (let i = 0; i < count; i++) {
      at += columns.start[i];
      id += columns.task[i];
      start[i] = at;
      end[i] = at + columns.dur[i];
      task[i] = id;
      const lane = columns.lane[i];
      firstLane[i] = typeof lane === "number" ? lane : lane[0];
    }
  }
  function lanesOf(i) {
    const lane = columns.lane[i];
    return typeof lane === "number" ? [lane] : lane;
  }
  // The runs are sorted by start, so those in a time window are found by bisection: from the
  // first that starts after the window's start less the longest run, to the last that starts
  // before its end.
  let longest = 0;
  for (let i = 0; i < count; i++) longest = Math.max(longest, end[i] - start[i]);
  function firstStartingAfter(t) {
    let low = 0;
    let high = count;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (start[middle] <= t) low = middle + 1;
      else high = middle;
    }
    return low;
  }
  function inWindow(t0, t1) {
    return [firstStartingAfter(t0 - longest - 1), firstStartingAfter(t1)];
  }

  // -- lanes: one per worker x core, per worker x GPU, one for runs with neither, each with
  // a row for every run that overlapped the runs of its rows above ---------------------------
  const lanes = model.lanes;
  const laneCount = lanes.span.length;
  const GAP = 6; // between workers
  const laneHeight = Math.max(3, Math.min(26, Math.floor(560 / Math.max(laneCount, 1))));
  const laneTop = new Float64Array(laneCount);
  let worldHeight = 0;
  for (let l = 0; l < laneCount; l++) {
    if (l > 0 && lanes.span[l] !== lanes.span[l - 1]) worldHeight += GAP;
    laneTop[l] = worldHeight;
    worldHeight += laneHeight;
  }
  const laneRuns = [];
  {
    const sizes = new Int32Array(laneCount);
    for (let i = 0; i < count; i++) for (const l of lanesOf(i)) sizes[l]++;
    for (let l = 0; l < laneCount; l++) laneRuns.push(new Int32Array(sizes[l]));
    sizes.fill(0);
    for (let i = 0; i < count; i++) for (const l of lanesOf(i)) laneRuns[l][sizes[l]++] = i;
  }
  function laneLabel(l) {
    // A lane's further rows hold runs that overlapped its first: "core 0 (2)".
    const row = lanes.row[l] > 0 ? " (" + (lanes.row[l] + 1) + ")" : "";
    const kind = lanes.kind[l];
    if (kind === 0) return "core " + lanes.id[l] + row;
    if (kind === 1) return "gpu " + lanes.id[l] + row;
    return "no cores" + row;
  }

  // -- colours -----------------------------------------------------------------------------
  const PALETTE = [
    "#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948",
    "#9c755f", "#ff9da7", "#86bcb6", "#8cd17d", "#d4a6c8", "#a0cbe8",
  ];
  function colour(key) {
    if (key < PALETTE.length) return PALETTE[key];
    return "hsl(" + ((key * 137.508) % 360).toFixed(1) + ", 55%, 62%)";
  }
  const schemes = {
    name: { keys: columns.name, labels: model.names },
    group: { keys: columns.group, labels: model.groups.map((g) => g || "(none)") },
  };
  for (const scheme of Object.values(schemes)) scheme.colours = scheme.labels.map((_, key) => colour(key));
  let scheme = schemes.name;
  const marked = [];
  for (let i = 0; i < count; i++) if (columns.outcome[i] !== FINISHED) marked.push(i);

  // -- formatting --------------------------------------------------------------------------
  function duration(us) {
    if (us < 1e3) return Math.round(us) + " µs";
    if (us < 1e6) return (us / 1e3).toFixed(1) + " ms";
    if (us < 60e6) return (us / 1e6).toFixed(2) + " s";
    if (us < 3600e6) return Math.floor(us / 60e6) + " min " + Math.round((us % 60e6) / 1e6) + " s";
    return Math.floor(us / 3600e6) + " h " + Math.round((us % 3600e6) / 60e6) + " min";
  }
  function tickLabel(t, step) {
    const sign = t < 0 ? "-" : "";
    t = Math.abs(t);
    if (step >= 60e6) {
      const minutes = Math.round(t / 60e6);
      if (minutes < 60) return sign + minutes + " min";
      return sign + Math.floor(minutes / 60) + " h " + String(minutes % 60).padStart(2, "0");
    }
    if (step >= 1e6) {
      const seconds = Math.round(t / 1e6);
      if (seconds < 60) return sign + seconds + " s";
      return sign + Math.floor(seconds / 60) + ":" + String(seconds % 60).padStart(2, "0") + " min";
    }
    if (step >= 1e5) return sign + (t / 1e6).toFixed(1) + " s";
    if (step >= 1e3) return sign + Math.round(t / 1e3) + " ms";
    return sign + (t / 1e3).toFixed(Math.min(3, Math.ceil(-Math.log10(step / 1e3)))) + " ms";
  }
  // Tick steps people read easily: 1, 2, 5 x 10^k below a second, then whole seconds,
  // minutes and hours that divide the next unit.
  const STEPS = [];
  for (let power = 1; power < 1e6; power *= 10) STEPS.push(power, 2 * power, 5 * power);
  for (const seconds of [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]) {
    STEPS.push(seconds * 1e6);
  }
  function niceStep(range, ticks) {
    const raw = range / Math.max(ticks, 1);
    for (const step of STEPS) if (step >= raw) return step;
    return Math.ceil(raw / 86400e6) * 86400e6;
  }

  // -- the view: which time range and which lanes are shown ----------------------------------
  const GUTTER = 170;
  const AXIS = 24;
  const timeline = document.getElementById("timeline");
  const canvas = document.getElementById("timeline-canvas");
  const barsLayer = document.getElementById("bars");
  const tip = document.getElementById("tip");
  const viewHeight = Math.max(40, Math.min(worldHeight, 620));
  const span = Math.max(model.span, 1);
  const view = { t0: 0, t1: span, y: 0 };
  function wholeRun() {
    view.t0 = -span * 0.01;
    view.t1 = span * 1.01;
    view.y = 0;
  }
  wholeRun();
  let width = 800;
  function plotWidth() {
    return Math.max(width - GUTTER - 8, 50);
  }
  function xOf(t) {
    return GUTTER + ((t - view.t0) / (view.t1 - view.t0)) * plotWidth();
  }
  function timeAt(x) {
    return view.t0 + ((x - GUTTER) / plotWidth()) * (view.t1 - view.t0);
  }
  function clampView() {
    const range = Math.min(Math.max(view.t1 - view.t0, 5), span * 1.5);
    const middle = Math.min(Math.max((view.t0 + view.t1) / 2, 0), span);
    view.t0 = middle - range / 2;
    view.t1 = middle + range / 2;
    view.y = Math.min(Math.max(view.y, 0), Math.max(worldHeight - viewHeight, 0));
  }
  function zoom(factor, x) {
    const t = timeAt(x);
    view.t0 = t - (t - view.t0) * factor;
    view.t1 = t + (view.t1 - t) * factor;
    clampView();
    schedule();
  }

  // -- painting --------------------------------------------------------------------------
  const ratio = window.devicePixelRatio || 1;
  const context = canvas.getContext("2d");
  const hatch = (function () {
    const tile = document.createElement("canvas");
    tile.width = tile.height = 6;
    const pen = tile.getContext("2d");
    pen.strokeStyle = "rgba(255, 255, 255, 0.8)";
    pen.lineWidth = 1.5;
    pen.beginPath();
    pen.moveTo(0, 6);
    pen.lineTo(6, 0);
    pen.stroke();
    return context.createPattern(tile, "repeat");
  })();
  let hovered = -1;
  const DOM_LIMIT = 1500;
  let shown = [];
  // The hovered run is outlined on a canvas of its own, so that hovering repaints nothing else.
  const overlay = document.createElement("canvas");
  overlay.className = "overlay";
  canvas.after(overlay);
  const pointer = overlay.getContext("2d");
  // Per frame: the runs in view grouped by colour, and which pixel columns of each lane
  // already have a sub-pixel run (one is enough; 100,000 of them need not be drawn one by one).
  const byColour = new Int32Array(count);
  let covered = new Uint8Array(0);

  function resize() {
    width = timeline.clientWidth || 800;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round((AXIS + viewHeight) * ratio);
    canvas.style.height = AXIS + viewHeight + "px";
    overlay.width = canvas.width;
    overlay.height = canvas.height;
    overlay.style.height = canvas.style.height;
    covered = new Uint8Array(laneCount * (Math.ceil(width) + 1));
    barsLayer.style.left = GUTTER + "px";
    barsLayer.style.top = AXIS + "px";
    barsLayer.style.width = plotWidth() + "px";
    barsLayer.style.height = viewHeight + "px";
    utilisation.resize();
  }

  function laneY(l) {
    return AXIS + laneTop[l] - view.y;
  }

  function paintHover() {
    pointer.setTransform(ratio, 0, 0, ratio, 0, 0);
    pointer.clearRect(0, 0, width, AXIS + viewHeight);
    if (hovered < 0) return;
    pointer.save();
    pointer.beginPath();
    pointer.rect(GUTTER, AXIS, plotWidth(), viewHeight);
    pointer.clip();
    pointer.strokeStyle = "#1f2328";
    pointer.lineWidth = 2;
    const x0 = xOf(start[hovered]);
    const w = Math.max(xOf(end[hovered]) - x0, 1);
    for (const l of lanesOf(hovered)) pointer.strokeRect(x0 - 1, laneY(l), w + 2, laneHeight);
    pointer.restore();
  }

  function paint() {
    const painting = performance.now();
    const visible = paintLanes();
    paintHover();
    timeline.dataset.paintMs = String(Math.round(performance.now() - painting));
    return visible;
  }

  function paintLanes() {
    const ctx = context;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, AXIS + viewHeight);
    const right = GUTTER + plotWidth();
    // Worker bands and lane labels.
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    for (let l = 0; l < laneCount; l++) {
      const y = laneY(l);
      if (y + laneHeight < AXIS || y > AXIS + viewHeight) continue;
      if (lanes.span[l] % 2 === 1) {
        ctx.fillStyle = "#f6f8fa";
        ctx.fillRect(0, y, right, laneHeight);
      }
      const first = l === 0 || lanes.span[l] !== lanes.span[l - 1];
      ctx.fillStyle = "#1f2328";
      if (first) {
        ctx.font = "600 11px system-ui, sans-serif";
        ctx.textAlign = "left";
        ctx.fillText(clip(ctx, model.workers[lanes.span[l]].id, 100), 4, y + Math.max(laneHeight, 12) / 2);
        ctx.font = "11px system-ui, sans-serif";
      }
      if (laneHeight >= 10) {
        ctx.fillStyle = "#656d76";
        ctx.textAlign = "right";
        ctx.fillText(laneLabel(l), GUTTER - 6, y + laneHeight / 2);
      }
    }
    // The bars.
    ctx.save();
    ctx.beginPath();
    ctx.rect(GUTTER, AXIS, plotWidth(), viewHeight);
    ctx.clip();
    // Grey where a worker was not connected: before it joined, after it left.
    ctx.fillStyle = "#e6e9ed";
    for (let l = 0; l < laneCount; l++) {
      const worker = model.workers[lanes.span[l]];
      const y = laneY(l);
      if (y + laneHeight < AXIS || y > AXIS + viewHeight) continue;
      const joined = xOf(worker.joined);
      if (joined > GUTTER) ctx.fillRect(GUTTER, y, joined - GUTTER, laneHeight);
      if (worker.left !== null) {
        const left = Math.max(xOf(worker.left), GUTTER);
        if (left < right) ctx.fillRect(left, y, right - left, laneHeight);
      }
    }
    const inner = laneHeight > 4 ? 1 : 0;
    const keys = scheme.keys;
    const [first, last] = inWindow(view.t0, view.t1);
    const visible = [];
    let crowded = false;
    const tally = new Int32Array(scheme.labels.length + 1);
    for (let i = first; i < last; i++) if (end[i] >= view.t0) tally[keys[i] + 1]++;
    for (let k = 1; k < tally.length; k++) tally[k] += tally[k - 1];
    const fill = tally.slice();
    for (let i = first; i < last; i++) {
      if (end[i] < view.t0) continue;
      byColour[fill[keys[i]]++] = i;
      if (!crowded) {
        visible.push(i);
        crowded = visible.length > DOM_LIMIT;
      }
    }
    covered.fill(0);
    const columnsPerLane = Math.ceil(width) + 1;
    const top = AXIS - laneHeight;
    const bottom = AXIS + viewHeight;
    for (let key = 0; key < scheme.labels.length; key++) {
      if (tally[key] === tally[key + 1]) continue;
      ctx.fillStyle = scheme.colours[key];
      for (let k = tally[key]; k < tally[key + 1]; k++) {
        const i = byColour[k];
        const x0 = xOf(start[i]);
        const w = xOf(end[i]) - x0;
        const lane = columns.lane[i];
        const many = typeof lane !== "number";
        for (let n = 0, lanes = many ? lane.length : 1; n < lanes; n++) {
          const l = many ? lane[n] : lane;
          const y = laneY(l);
          if (y < top || y > bottom) continue;
          if (w < 1) {
            const column = Math.max(Math.floor(x0), 0);
            const slot = l * columnsPerLane + Math.min(column, columnsPerLane - 1);
            if (covered[slot]) continue;
            covered[slot] = 1;
            ctx.fillRect(column, y + inner, 1, laneHeight - 2 * inner);
          } else ctx.fillRect(x0, y + inner, w, laneHeight - 2 * inner);
        }
      }
    }
    for (const i of marked) {
      if (end[i] < view.t0 || start[i] > view.t1) continue;
      const x0 = xOf(start[i]);
      const w = Math.max(xOf(end[i]) - x0, 1);
      const outcome = columns.outcome[i];
      for (const l of lanesOf(i)) {
        const y = laneY(l) + inner;
        const h = laneHeight - 2 * inner;
        if (outcome === FAILED) {
          ctx.strokeStyle = "#d1242f";
          ctx.lineWidth = 2;
          if (w > 4 && h > 4) ctx.strokeRect(x0 + 1, y + 1, w - 2, h - 2);
          else {
            ctx.fillStyle = "#d1242f";
            ctx.fillRect(x0, y, w, h);
          }
        } else {
          if (outcome === RETRIED) {
            ctx.fillStyle = hatch;
            ctx.fillRect(x0, y, w, h);
          } else ctx.setLineDash([3, 2]);
          ctx.strokeStyle = "#1f2328";
          ctx.lineWidth = 1;
          ctx.strokeRect(x0 + 0.5, y + 0.5, Math.max(w - 1, 0.5), Math.max(h - 1, 0.5));
          ctx.setLineDash([]);
        }
      }
    }
    if (count === 0) {
      ctx.fillStyle = "#656d76";
      ctx.textAlign = "left";
      ctx.fillText("No task ran.", GUTTER + 8, AXIS + 14);
    }
    ctx.restore();
    // The time axis.
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, width, AXIS);
    ctx.strokeStyle = "#d0d7de";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(GUTTER, AXIS - 0.5);
    ctx.lineTo(right, AXIS - 0.5);
    ctx.stroke();
    const step = niceStep(view.t1 - view.t0, plotWidth() / 110);
    ctx.fillStyle = "#656d76";
    ctx.textAlign = "center";
    for (let t = Math.ceil(view.t0 / step) * step; t <= view.t1; t += step) {
      const x = Math.round(xOf(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, AXIS - 5);
      ctx.lineTo(x, AXIS);
      ctx.stroke();
      ctx.fillText(tickLabel(t, step), x, AXIS / 2 - 1);
    }
    ctx.textAlign = "left";
    ctx.fillStyle = "#1f2328";
    ctx.fillText(duration(view.t1 - view.t0) + " shown", 4, AXIS / 2 - 1);
    return crowded ? null : visible;
  }

  function clip(ctx, text, room) {
    if (ctx.measureText(text).width <= room) return text;
    while (text.length > 1 && ctx.measureText(text + "…").width > room) text = text.slice(0, -1);
    return text + "…";
  }

  // -- the bars as elements ------------------------------------------------------------------
  const bars = new Array(count);
  {
    const fragment = document.createDocumentFragment();
    for (let i = 0; i < count; i++) {
      const bar = document.createElement("div");
      bar.className = "bar " + OUTCOME[columns.outcome[i]];
      bar.dataset.taskId = String(task[i]);
      bar.dataset.run = String(i);
      fragment.appendChild(bar);
      bars[i] = bar;
    }
    barsLayer.appendChild(fragment);
  }
  function placeBars(visible) {
    for (const i of shown) bars[i].classList.remove("shown");
    shown = visible || [];
    for (const i of shown) {
      const x0 = xOf(start[i]) - GUTTER;
      const w = Math.max(xOf(end[i]) - GUTTER - x0, 1);
      const y = laneY(firstLane[i]) - AXIS;
      const style = bars[i].style;
      style.left = x0 + "px";
      style.top = y + "px";
      style.width = w + "px";
      style.height = laneHeight + "px";
      bars[i].classList.add("shown");
    }
  }

  // -- redrawing, at most once a frame; the bar elements follow when the view rests ------------
  let pending = false;
  let resting = 0;
  function schedule() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(function () {
      pending = false;
      const visible = paint();
      utilisation.paint();
      // The run under a pointer that did not move changes with the view.
      if (pointerAt !== null && !drag) showTip(runAt(pointerAt[0], pointerAt[1]), pointerAt[0], pointerAt[1]);
      // The bar elements stand where the bars were until the view rests: take them away
      // (only those shown, not the layer: restyling all of 100,000 bars would take long).
      placeBars(null);
      clearTimeout(resting);
      resting = setTimeout(function () {
        placeBars(visible);
      }, 120);
    });
  }

  // -- hover -----------------------------------------------------------------------------
  function runAt(x, y) {
    if (x < GUTTER || y < AXIS) return -1;
    const worldY = y - AXIS + view.y;
    let lane = -1;
    for (let l = 0; l < laneCount; l++) {
      if (worldY >= laneTop[l] && worldY < laneTop[l] + laneHeight) {
        lane = l;
        break;
      }
    }
    if (lane < 0) return -1;
    const slack = (3 / plotWidth()) * (view.t1 - view.t0);
    const t = timeAt(x);
    const runs = laneRuns[lane];
    let low = 0;
    let high = runs.length; // the first run that starts after t + slack
    while (low < high) {
      const middle = (low + high) >> 1;
      if (start[runs[middle]] <= t + slack) low = middle + 1;
      else high = middle;
    }
    for (let k = low - 1; k >= 0 && k >= low - 64; k--) {
      if (end[runs[k]] >= t - slack) return runs[k];
    }
    return -1;
  }
  function describe(i) {
    const lines = [];
    const outcome = OUTCOME[columns.outcome[i]];
    const note = model.notes[String(i)];
    lines.push("outcome: " + outcome + (note ? " — " + note : ""));
    const own = lanesOf(i);
    const worker = model.workers[lanes.span[own[0]]].id;
    const cores = own.filter((l) => lanes.kind[l] === 0).map((l) => lanes.id[l]);
    const gpus = own.filter((l) => lanes.kind[l] === 1).map((l) => lanes.id[l]);
    let where = "worker " + worker;
    if (cores.length) where += " · cores " + cores.join(",");
    if (gpus.length) where += " · gpus " + gpus.join(",");
    lines.push(where);
    lines.push("allocation " + (model.allocs[columns.alloc[i]].text || "(nothing)"));
    lines.push("start +" + duration(start[i]) + " · duration " + duration(end[i] - start[i]));
    if (model.groups[columns.group[i]]) lines.push("group " + model.groups[columns.group[i]]);
    return lines.join("\n");
  }
  function showTip(i, x, y) {
    if (i !== hovered) {
      if (hovered >= 0) bars[hovered].classList.remove("hover");
      hovered = i;
      if (i >= 0) bars[i].classList.add("hover");
      paintHover();
    }
    if (i < 0) {
      tip.hidden = true;
      return;
    }
    const title = document.createElement("b");
    title.textContent =
      "task " + task[i] + " · " + model.names[columns.name[i]] + " (attempt " + columns.attempt[i] + ")";
    tip.replaceChildren(title, document.createTextNode("\n" + describe(i)));
    tip.hidden = false;
    const left = Math.min(x + 14, width - tip.offsetWidth - 4);
    const top = y + 16 + tip.offsetHeight > AXIS + viewHeight ? y - tip.offsetHeight - 10 : y + 16;
    tip.style.left = Math.max(left, 0) + "px";
    tip.style.top = Math.max(top, 0) + "px";
  }

  // -- input -----------------------------------------------------------------------------
  let drag = null;
  let pointerAt = null;
  function local(event) {
    const box = timeline.getBoundingClientRect();
    return [event.clientX - box.left, event.clientY - box.top];
  }
  timeline.addEventListener("mousemove", function (event) {
    const [x, y] = local(event);
    pointerAt = [x, y];
    if (drag) {
      const per = (view.t1 - view.t0) / plotWidth();
      view.t0 = drag.t0 - (x - drag.x) * per;
      view.t1 = drag.t1 - (x - drag.x) * per;
      view.y = drag.y - (y - drag.y0);
      clampView();
      schedule();
      return;
    }
    const target = event.target;
    const i = target.classList && target.classList.contains("bar") ? Number(target.dataset.run) : runAt(x, y);
    showTip(i, x, y);
  });
  timeline.addEventListener("mouseleave", function () {
    pointerAt = null;
    showTip(-1, 0, 0);
  });
  timeline.addEventListener("mousedown", function (event) {
    const [x, y] = local(event);
    drag = { x: x, y0: y, t0: view.t0, t1: view.t1, y: view.y };
    timeline.classList.add("dragging");
    showTip(-1, 0, 0);
  });
  window.addEventListener("mouseup", function () {
    drag = null;
    timeline.classList.remove("dragging");
  });
  timeline.addEventListener("dblclick", function () {
    wholeRun();
    schedule();
  });
  timeline.addEventListener(
    "wheel",
    function (event) {
      event.preventDefault();
      const scale = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? 400 : 1;
      const dx = event.deltaX * scale;
      const dy = event.deltaY * scale;
      if (event.shiftKey) view.y += dy || dx;
      else if (Math.abs(dx) > Math.abs(dy)) {
        const per = (view.t1 - view.t0) / plotWidth();
        view.t0 += dx * per;
        view.t1 += dx * per;
      } else return zoom(Math.exp(dy * 0.0015), local(event)[0]);
      clampView();
      schedule();
    },
    { passive: false },
  );
  document.getElementById("zoom-in").addEventListener("click", function () {
    zoom(0.5, GUTTER + plotWidth() / 2);
  });
  document.getElementById("zoom-out").addEventListener("click", function () {
    zoom(2, GUTTER + plotWidth() / 2);
  });
  document.getElementById("zoom-reset").addEventListener("click", function () {
    wholeRun();
    schedule();
  });
  document.addEventListener("keydown", function (event) {
    if (event.target instanceof HTMLSelectElement || event.target instanceof HTMLInputElement) return;
    const middle = GUTTER + plotWidth() / 2;
    const shift = (view.t1 - view.t0) * 0.1;
    if (event.key === "+" || event.key === "=") zoom(0.5, middle);
    else if (event.key === "-") zoom(2, middle);
    else if (event.key === "0") {
      wholeRun();
      schedule();
    } else if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      const sign = event.key === "ArrowLeft" ? -1 : 1;
      view.t0 += sign * shift;
      view.t1 += sign * shift;
      clampView();
      schedule();
    }
  });
  const colourBy = document.getElementById("colour-by");
  colourBy.addEventListener("change", function () {
    scheme = schemes[colourBy.value];
    legend();
    schedule();
  });

  function legend() {
    const box = document.getElementById("legend");
    const tally = new Map();
    for (let i = 0; i < count; i++) tally.set(scheme.keys[i], (tally.get(scheme.keys[i]) || 0) + 1);
    const entries = scheme.labels.map((label, key) => [key, label]).filter(([key]) => tally.has(key));
    const items = entries.slice(0, 40).map(function ([key, label]) {
      const item = document.createElement("span");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = scheme.colours[key];
      const runs = tally.get(key);
      item.append(swatch, label + " (" + runs + (runs === 1 ? " run)" : " runs)"));
      return item;
    });
    if (entries.length > 40) {
      const rest = document.createElement("span");
      rest.textContent = "… and " + (entries.length - 40) + " more";
      items.push(rest);
    }
    box.replaceChildren(...items);
  }

  // -- utilisation per kind over time, for the time range the timeline shows --------------------
  const utilisation = (function () {
    const chart = document.getElementById("utilisation-canvas");
    const pen = chart.getContext("2d");
    const HEIGHT = 150;
    const TOP = 8;
    const offered = [];
    for (const worker of model.workers) {
      for (const kind of Object.keys(worker.totals)) if (!offered.includes(kind)) offered.push(kind);
    }
    const order = ["cores", "gpu", "mem"];
    offered.sort((a, b) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99) || (a < b ? -1 : 1));
    const pools = Object.keys(model.pools).filter((kind) => !offered.includes(kind));
    const kinds = offered.concat(pools);
    const COLOURS = { cores: "#0969da", gpu: "#8250df", mem: "#1a7f37" };
    const kindColour = (kind, k) => COLOURS[kind] || colour(k + 3);
    const amounts = model.allocs.map((alloc) => kinds.map((kind) => alloc.amounts[kind] || 0));

    function spread(into, diff, from, to, amount, t0, bucket, buckets) {
      // Adds amount x the time of [from, to) that falls in each bucket, in bucket widths.
      if (to <= t0 || from >= t0 + bucket * buckets || to <= from) return;
      const a = Math.max((from - t0) / bucket, 0);
      const b = Math.min((to - t0) / bucket, buckets);
      const i = Math.floor(a);
      const j = Math.min(Math.floor(b), buckets - 1);
      if (i === j) {
        into[i] += amount * (b - a);
        return;
      }
      into[i] += amount * (i + 1 - a);
      into[j] += amount * (b - j);
      diff[i + 1] += amount;
      diff[j] -= amount;
    }
    function settle(into, diff) {
      let level = 0;
      for (let k = 0; k < into.length; k++) {
        level += diff[k];
        into[k] += level;
      }
    }

    function paintChart() {
      const painting = performance.now();
      paintSeries();
      chart.dataset.paintMs = String(Math.round(performance.now() - painting));
    }

    function paintSeries() {
      const w = width;
      pen.setTransform(ratio, 0, 0, ratio, 0, 0);
      pen.clearRect(0, 0, w, HEIGHT);
      const plot = plotWidth();
      const buckets = Math.max(Math.floor(plot / 2), 1);
      const bucket = (view.t1 - view.t0) / buckets;
      const used = kinds.map(() => new Float64Array(buckets));
      const usedDiff = kinds.map(() => new Float64Array(buckets + 1));
      const held = kinds.map(() => new Float64Array(buckets));
      const heldDiff = kinds.map(() => new Float64Array(buckets + 1));
      const [first, last] = inWindow(view.t0, view.t1);
      for (let i = first; i < last; i++) {
        if (end[i] < view.t0) continue;
        const row = amounts[columns.alloc[i]];
        for (let k = 0; k < kinds.length; k++) {
          if (row[k]) spread(used[k], usedDiff[k], start[i], end[i], row[k], view.t0, bucket, buckets);
        }
      }
      for (const worker of model.workers) {
        const left = worker.left === null ? model.span : worker.left;
        for (let k = 0; k < offered.length; k++) {
          const total = worker.totals[kinds[k]] || 0;
          if (total) spread(held[k], heldDiff[k], worker.joined, left, total, view.t0, bucket, buckets);
        }
      }
      for (let k = 0; k < kinds.length; k++) {
        settle(used[k], usedDiff[k]);
        if (k < offered.length) settle(held[k], heldDiff[k]);
        else held[k].fill(model.pools[kinds[k]] || 1);
      }
      const bottom = HEIGHT - 18;
      const yOf = (share) => bottom - share * (bottom - TOP);
      pen.font = "11px system-ui, sans-serif";
      pen.textBaseline = "middle";
      pen.textAlign = "right";
      pen.lineWidth = 1;
      for (const share of [0, 0.5, 1]) {
        const y = Math.round(yOf(share)) + 0.5;
        pen.strokeStyle = "#d0d7de";
        pen.beginPath();
        pen.moveTo(GUTTER, y);
        pen.lineTo(GUTTER + plot, y);
        pen.stroke();
        pen.fillStyle = "#656d76";
        pen.fillText(Math.round(share * 100) + " %", GUTTER - 6, y);
      }
      const means = [];
      for (let k = 0; k < kinds.length; k++) {
        pen.strokeStyle = kindColour(kinds[k], k);
        pen.lineWidth = 1.5;
        pen.beginPath();
        let drawing = false;
        let sumUsed = 0;
        let sumHeld = 0;
        for (let b = 0; b < buckets; b++) {
          if (!(held[k][b] > 0)) {
            drawing = false;
            continue;
          }
          sumUsed += used[k][b];
          sumHeld += held[k][b];
          const x = GUTTER + (b + 0.5) * (plot / buckets);
          const y = yOf(Math.min(used[k][b] / held[k][b], 1));
          if (drawing) pen.lineTo(x, y);
          else pen.moveTo(x, y);
          drawing = true;
        }
        pen.stroke();
        means.push(sumHeld > 0 ? sumUsed / sumHeld : null);
      }
      const box = document.getElementById("utilisation-legend");
      box.replaceChildren(
        ...kinds.map(function (kind, k) {
          const item = document.createElement("span");
          const swatch = document.createElement("span");
          swatch.className = "swatch";
          swatch.style.background = kindColour(kind, k);
          const what = k < offered.length ? kind : kind + " (pool, of the most held at once: " + model.pools[kind] + ")";
          const mean = means[k] === null ? "" : ": " + Math.round(means[k] * 100) + " % in view";
          item.append(swatch, what + mean);
          return item;
        }),
      );
      if (kinds.length === 0) {
        pen.textAlign = "left";
        pen.fillStyle = "#656d76";
        pen.fillText("No worker offered resources.", GUTTER + 8, HEIGHT / 2);
      }
    }
    return {
      resize: function () {
        chart.width = Math.round(width * ratio);
        chart.height = Math.round(HEIGHT * ratio);
        chart.style.height = HEIGHT + "px";
      },
      paint: paintChart,
    };
  })();

  // -- start ---------------------------------------------------------------------------------
  resize();
  legend();
  const visible = paint();
  utilisation.paint();
  placeBars(visible);
  window.addEventListener("resize", function () {
    resize();
    schedule();
  });
  document.body.dataset.runs = String(count);
  document.body.dataset.renderMs = String(Math.round(performance.now() - began));
  document.body.dataset.ready = "1";
})();
