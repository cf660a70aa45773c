/* dfnb static viewers (dfnb.viewer_html): each frame's image, true mask and probability maps are
   embedded once (JPEG / 8-bit PNG) and composited here, in the browser, with no kernel.
   Conventions shared with Python (dfnb.metrics): a pixel is predicted when level / 255 >= threshold
   and true when its mask level >= 128 (mask >= 0.5); IoU = 1 when both are empty. */
(function () {
  "use strict";
  if (window.dfnbViewers) return;
  var TRUTH = [0, 114, 178];  // Okabe-Ito blue
  var PRED = [230, 159, 0];   // Okabe-Ito orange

  /** Levels (0..255, length H*W) of a decoded grey PNG. */
  function levels(rgba) {
    var out = new Uint8Array(rgba.length / 4);
    for (var i = 0; i < out.length; i++) out[i] = rgba[4 * i];
    return out;
  }

  /** 1 where prob / 255 >= t (or, with t undefined, where the level >= 128). */
  function binary(lv, t) {
    var out = new Uint8Array(lv.length);
    for (var i = 0; i < lv.length; i++) out[i] = (t === undefined ? lv[i] >= 128 : lv[i] / 255 >= t) ? 1 : 0;
    return out;
  }

  /** IoU of the prediction (prob levels >= t) with the true mask (levels >= 128), as dfnb.metrics.iou. */
  function iou(prob, truth, t) {
    var tp = 0, fp = 0, fn = 0;
    for (var i = 0; i < prob.length; i++) {
      var p = prob[i] / 255 >= t, g = truth[i] >= 128;
      if (p && g) tp++; else if (p) fp++; else if (g) fn++;
    }
    var d = tp + fp + fn;
    return d === 0 ? 1 : tp / d;
  }

  /** Mask pixels (w*h, 0/1) with a 4-neighbour outside the mask or on the border. */
  function outline(m, w, h) {
    var out = new Uint8Array(m.length);
    for (var y = 0; y < h; y++) for (var x = 0; x < w; x++) {
      var i = y * w + x;
      if (!m[i]) continue;
      if (x === 0 || y === 0 || x === w - 1 || y === h - 1 || !m[i - 1] || !m[i + 1] || !m[i - w] || !m[i + w]) out[i] = 1;
    }
    return out;
  }

  /** Blend ``color`` into RGBA ``px`` with alpha ``a`` where ``m`` is 1 (in place). */
  function fill(px, m, color, a) {
    for (var i = 0; i < m.length; i++) {
      if (!m[i]) continue;
      for (var c = 0; c < 3; c++) px[4 * i + c] = px[4 * i + c] * (1 - a) + color[c] * a;
    }
  }

  function decode(uri) {
    return new Promise(function (resolve, reject) {
      var im = new Image();
      im.onload = function () {
        var c = document.createElement("canvas");
        c.width = im.naturalWidth; c.height = im.naturalHeight;
        var ctx = c.getContext("2d");
        ctx.drawImage(im, 0, 0);
        resolve(ctx.getImageData(0, 0, c.width, c.height).data);
      };
      im.onerror = function () { reject(new Error("dfnb viewer: an embedded image does not decode")); };
      im.src = uri;
    });
  }

  function data(root) {
    return JSON.parse(root.querySelector('script[type="application/json"]').textContent);
  }

  function get(root, name) { return root.querySelector(".dfnb-mv-" + name); }

  /** Panels of the current mode: {label(t), kind, k}. */
  function specs(d, side) {
    var models = d.probs.map(function (p, k) { return k; });
    var truth = d.truth !== null;
    var out = [];
    function pl(k) { return function (t) { return d.probs[k].name + " \u2265 " + t.toFixed(2) + " (orange)"; }; }
    if (side || !models.length) {
      out.push({ label: function () { return "image"; }, kind: "image" });
      if (truth) out.push({ label: function () { return "true mask (blue)"; }, kind: "truth" });
      models.forEach(function (k) { out.push({ label: pl(k), kind: "pred", k: k }); });
    } else {
      models.forEach(function (k) {
        out.push({ label: function (t) { return pl(k)(t) + (truth ? ", true mask: blue outline" : ""); }, kind: "overlay", k: k });
      });
    }
    return out;
  }

  function maskViewer(root) {
    var d = data(root);
    var n = d.images.length, w = d.w, h = d.h;
    var frame = get(root, "frame"), op = get(root, "opacity"), th = get(root, "threshold"), side = get(root, "side");
    var panels = get(root, "panels");
    var jobs = d.images.map(decode);
    if (d.truth) jobs = jobs.concat(d.truth.map(decode));
    d.probs.forEach(function (p) { jobs = jobs.concat(p.maps.map(decode)); });
    Promise.all(jobs).then(function (px) {
      var imgs = px.slice(0, n), at = n;
      var truth = null, truthBin = null, truthLine = null;
      if (d.truth) {
        truth = px.slice(at, at + n).map(levels); at += n;
        truthBin = truth.map(function (lv) { return binary(lv); });
        truthLine = truthBin.map(function (m) { return outline(m, w, h); });
      }
      var probs = d.probs.map(function () { var s = px.slice(at, at + n).map(levels); at += n; return s; });
      var canvases = [], labels = [], cur = [];

      function layout() {
        cur = specs(d, !side || side.checked);
        panels.innerHTML = "";
        canvases = []; labels = [];
        var per = Math.min(cur.length, 3);  // up to three panels shrink to share a row, more wrap
        cur.forEach(function () {
          var p = document.createElement("div");
          p.className = "dfnb-mv-panel";
          p.style.width = d.panel_px + "px";
          p.style.maxWidth = "calc((100% - " + 8 * (per - 1) + "px) / " + per + ")";
          var lab = document.createElement("div");
          lab.className = "dfnb-mv-label";
          var c = document.createElement("canvas");
          c.width = w; c.height = h;
          p.appendChild(lab); p.appendChild(c); panels.appendChild(p);
          labels.push(lab); canvases.push(c);
        });
      }

      function draw() {
        var i = +frame.value, a = +op.value, t = th ? +th.value : 0.5;
        get(root, "counter").textContent = (i + 1) + " / " + n;
        get(root, "caption").textContent = d.captions ? d.captions[i] : "";
        get(root, "opacity-value").textContent = a.toFixed(2);
        if (th) get(root, "threshold-value").textContent = t.toFixed(2);
        cur.forEach(function (s, j) {
          var out = new ImageData(w, h);
          out.data.set(imgs[i]);
          if (s.kind === "truth") fill(out.data, truthBin[i], TRUTH, a);
          if (s.kind === "pred" || s.kind === "overlay") fill(out.data, binary(probs[s.k][i], t), PRED, a);
          if (s.kind === "overlay" && truth) fill(out.data, truthLine[i], TRUTH, 1);
          canvases[j].getContext("2d").putImageData(out, 0, 0);
          labels[j].textContent = s.label(t);
        });
        var box = get(root, "iou");
        if (box && truth) {
          box.innerHTML = "";
          d.probs.forEach(function (p, k) {
            var mean = 0;
            for (var f = 0; f < n; f++) mean += iou(probs[k][f], truth[f], t);
            var row = document.createElement("div");
            var v = document.createElement("span");
            v.className = "dfnb-mv-iou-value";
            v.textContent = iou(probs[k][i], truth[i], t).toFixed(3);
            row.appendChild(document.createTextNode("IoU(" + p.name + " \u2265 " + t.toFixed(2) + ", true mask) = "));
            row.appendChild(v);
            row.appendChild(document.createTextNode(" on this frame; mean over the " + n + " frames " + (mean / n).toFixed(3)));
            box.appendChild(row);
          });
        }
      }

      layout(); draw();
      [frame, op, th].forEach(function (el) { if (el) el.addEventListener("input", draw); });
      if (side) side.addEventListener("change", function () { layout(); draw(); });
      root.classList.add("dfnb-ready");
    }).catch(function (e) {
      root.classList.add("dfnb-failed");
      get(root, "caption").textContent = String(e);
    });
  }

  function frameViewer(root) {
    var d = data(root);
    var frame = get(root, "frame"), img = root.querySelector("img.dfnb-mv-frame-image");
    function draw() {
      var i = +frame.value;
      img.src = d.frames[i];
      get(root, "counter").textContent = (i + 1) + " / " + d.frames.length;
      get(root, "caption").textContent = d.captions ? d.captions[i] : "";
    }
    draw();
    frame.addEventListener("input", draw);
    root.classList.add("dfnb-ready");
  }

  window.dfnbViewers = { iou: iou, binary: binary, outline: outline, levels: levels,
                         maskViewer: maskViewer, frameViewer: frameViewer, TRUTH: TRUTH, PRED: PRED };
})();
