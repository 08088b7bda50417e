// Injected by tests/report_browser.rs into a COPY of report.html (the page
// itself has no script): measures the laid-out page in headless Chromium and
// writes the findings as JSON into a pre element (id matador-check), which the test
// reads from `--dump-dom`. Contrast follows WCAG 2.x (relative luminance,
// ratio (L1 + 0.05) / (L2 + 0.05); AA: 4.5, 3 for large text). An
// exception is reported as {"error": …} instead.
function matadorCheck() {
  var W = window.innerWidth;
  var out = {
    width: W,
    scroll_width: document.documentElement.scrollWidth,
    overflow: [],
    svgs: 0,
    svg_problems: [],
    texts: 0,
    contrast: [],
    scripts: document.scripts.length,
    resources: performance.getEntriesByType('resource').map(function (e) { return e.name; }),
    overlays: []
  };
  function name(el) {
    return el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
      (el.getAttribute('class') ? '.' + el.getAttribute('class').split(' ').join('.') : '');
  }
  function scroller(el) {
    for (var p = el.parentElement; p; p = p.parentElement) {
      var o = getComputedStyle(p).overflowX;
      if (o === 'auto' || o === 'scroll') return p;
    }
    return null;
  }
  // Nothing wider than the window, except inside a scroll container.
  var all = document.body.querySelectorAll('*');
  for (var i = 0; i < all.length; i++) {
    var el = all[i];
    if (el.closest('svg') && el.tagName.toLowerCase() !== 'svg') continue;
    var r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (scroller(el)) continue;
    if (r.right > W + 0.5 || r.left < -0.5) {
      out.overflow.push(name(el) + ' spans ' + r.left.toFixed(0) + '..' + r.right.toFixed(0));
    }
  }
  // Every SVG names itself.
  var svgs = document.querySelectorAll('svg');
  out.svgs = svgs.length;
  for (var s = 0; s < svgs.length; s++) {
    var t = svgs[s].querySelector(':scope > title');
    var d = svgs[s].querySelector(':scope > desc');
    if (!t || !t.textContent.trim() || !d || !d.textContent.trim()) {
      out.svg_problems.push('svg ' + s + ' (' + name(svgs[s]) + ') lacks a title or desc');
    }
  }
  function rgba(c) {
    var m = /rgba?\(([^)]+)\)/.exec(c || '');
    if (!m) return null;
    var p = m[1].split(',').map(parseFloat);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  }
  function over(fg, bg) {
    var a = fg[3];
    return [fg[0] * a + bg[0] * (1 - a), fg[1] * a + bg[1] * (1 - a), fg[2] * a + bg[2] * (1 - a), 1];
  }
  function lum(c) {
    function f(v) { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  }
  function ratio(a, b) {
    var x = lum(a), y = lum(b);
    return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05);
  }
  // Background of an HTML element: its and its ancestors' background colours over white.
  function htmlBg(el) {
    var layers = [];
    for (var p = el; p && p.nodeType === 1; p = p.parentElement) {
      var c = rgba(getComputedStyle(p).backgroundColor);
      if (c && c[3] > 0) layers.push(c);
      if (c && c[3] >= 1) break;
    }
    var bg = [255, 255, 255, 1];
    for (var k = layers.length - 1; k >= 0; k--) bg = over(layers[k], bg);
    return bg;
  }
  // Background of SVG text: its halo (paint-order stroke), else the shape under its centre.
  function svgBg(el) {
    var st = getComputedStyle(el);
    if (/^stroke/.test(st.paintOrder) && st.stroke !== 'none' && parseFloat(st.strokeWidth) > 0) {
      var h = rgba(st.stroke);
      if (h) return h;
    }
    var svg = el.closest('svg');
    el.scrollIntoView({block: 'center', inline: 'center'});
    var b = el.getBoundingClientRect();
    var hits = document.elementsFromPoint(b.left + b.width / 2, b.top + b.height / 2);
    for (var k = 0; k < hits.length; k++) {
      var h2 = hits[k];
      if (h2 === el || h2.closest('text')) continue;
      if (h2 === svg || !svg.contains(h2)) break;
      var f = rgba(getComputedStyle(h2).fill);
      if (f && f[3] > 0) return over(f, htmlBg(svg));
    }
    return htmlBg(svg);
  }
  function large(st) {
    var px = parseFloat(st.fontSize);
    return px >= 24 || (px >= 18.66 && parseInt(st.fontWeight, 10) >= 700);
  }
  var texts = document.body.querySelectorAll('*');
  for (var j = 0; j < texts.length; j++) {
    var e = texts[j];
    var tag = e.tagName.toLowerCase();
    if (tag === 'title' || tag === 'desc' || tag === 'style' || tag === 'script' || e.id === 'matador-check') continue;
    var own = false;
    for (var n = e.firstChild; n; n = n.nextSibling) {
      if (n.nodeType === 3 && n.textContent.trim()) own = true;
    }
    if (!own) continue;
    var st2 = getComputedStyle(e);
    if (st2.display === 'none' || st2.visibility === 'hidden') continue;
    var inSvg = !!e.closest('svg');
    var bg2 = inSvg ? svgBg(e) : htmlBg(e);
    var fg = rgba(inSvg ? st2.fill : st2.color);
    if (!fg) continue;
    fg = over(fg, bg2);
    out.texts++;
    var need = large(st2) ? 3 : 4.5;
    var got = ratio(fg, bg2);
    if (got < need) {
      out.contrast.push(name(e) + ' "' + e.textContent.trim().slice(0, 30) + '" ' + got.toFixed(2) + ' < ' + need);
    }
  }
  // The group overlay works without script: choosing a group recolours its members.
  var radios = document.querySelectorAll('input[name=overlay]');
  var shapes = document.querySelectorAll('svg.world path.c');
  function fills() { return Array.prototype.map.call(shapes, function (x) { return getComputedStyle(x).fill; }); }
  var before = fills();
  for (var q = 0; q < radios.length; q++) {
    radios[q].checked = true;
    var after = fills();
    var changed = 0;
    for (var z = 0; z < after.length; z++) if (after[z] !== before[z]) changed++;
    out.overlays.push([radios[q].id, changed]);
  }
  if (radios.length) radios[0].checked = true;
  window.scrollTo(0, 0);
  return out;
}
window.addEventListener('load', function () {
  var result;
  try {
    result = matadorCheck();
  } catch (e) {
    result = {error: String(e) + ' ' + (e.stack || '')};
  }
  var pre = document.createElement('pre');
  pre.id = 'matador-check';
  pre.textContent = JSON.stringify(result);
  // The page runs in a srcdoc iframe of the probe (same origin): headless
  // Chromium's window is at least 500 px wide, a phone is narrower.
  (window.parent !== window ? window.parent.document : document).body.appendChild(pre);
});
