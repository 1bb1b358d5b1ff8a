/* breastlab review page: render the sort, filter it, take corrections, export a truth table.
   Plain ES2017, no library: the page must work offline from a file. */
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("review-data").textContent);
  const COLUMNS = ["set_id", "study", "series_uid", "series_number", "image_set", "sop_instance_uids", "frames",
                   "label", "sorter_label", "status", "note"];
  const $ = (id) => document.getElementById(id);
  const esc = (v) => String(v == null ? "" : v).replace(/[&<>"']/g, (c) =>
    ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);
  const sets = D.sets;
  const byId = new Map(sets.map((s) => [s.id, s]));
  const keyToLabel = new Map(Object.entries(D.keys).map(([lab, k]) => [k, lab]));
  const storeKey = "breastlab-review:" + sets.length + ":" + sets.slice(0, 3).map((s) => s.id).join(",");
  let decisions = {};  // set id -> {label, status, note}
  try { decisions = JSON.parse(localStorage.getItem(storeKey) || "{}") || {}; } catch (e) { decisions = {}; }
  const save = () => { try { localStorage.setItem(storeKey, JSON.stringify(decisions)); } catch (e) { /* private mode */ } };
  let visible = [];  // set ids in screen order
  let current = null;

  const isUnknown = (s) => s.label === D.unknown;
  const isLow = (s) => isUnknown(s) || Number(s.confidence) < D.low;
  const priority = (s) => (isUnknown(s) ? 0 : isLow(s) ? 1 : 2);
  const num = (v, d) => (v == null || v === "" ? d : Number(v));

  const timed = (o) => o.dce_phase != null || o.b_value != null;  // a DCE time point or a b-value
  function siblings(s) {  // the other time points / b-values of the same acquisition
    if (!s.acq || !timed(s)) return [];
    const sib = sets.filter((o) => o.acq === s.acq && o.study === s.study && timed(o));
    if (sib.length < 2) return [];
    return sib.sort((a, b) => num(a.dce_phase, 1e9) - num(b.dce_phase, 1e9) || num(a.b_value, 1e9) - num(b.b_value, 1e9)
      || num(a.series_number, 0) - num(b.series_number, 0) || num(a.image_set, 0) - num(b.image_set, 0));
  }
  function caption(o) {
    if (o.b_value != null) return "b=" + o.b_value;
    if (o.dce_phase != null) return "#" + (Number(o.dce_phase) + 1) + (o.dce_seconds != null ? " " + Math.round(o.dce_seconds) + "s" : "");
    return "s" + (o.series_number != null ? o.series_number : "?");
  }
  function imgTag(s, cls, which) {
    const imgs = s.img || [];
    if (!imgs.length) {
      return '<div class="noimg ' + cls + '" title="' + esc(s.why || "no image") + '">no image' + (s.why ? ": " + esc(s.why) : "") + "</div>";
    }
    const i = which == null ? Math.floor((imgs.length - 1) / 2) : which;
    return '<img class="' + cls + '" alt="' + esc(s.label) + " " + esc(s.id) + '" src="' + imgs[i][0] + '">';
  }
  function stripHtml(s) {
    const own = s.img || [];
    if (own.length > 1) {
      return own.map((im, i) => '<figure><img src="' + im[0] + '" alt=""><figcaption>' + esc(im[1]) + "</figcaption></figure>").join("");
    }
    return siblings(s).map((o) => '<figure data-jump="' + esc(o.id) + '"' + (o.id === s.id ? ' class="cur"' : "") + ">" +
      imgTag(o, "", null) + "<figcaption>" + esc(caption(o)) + "</figcaption></figure>").join("");
  }
  function decided(s) { const d = decisions[s.id]; return d && d.label ? d : null; }  // a note alone decides nothing
  function stateOf(s) {
    const d = decided(s);
    if (!d) return "todo";
    return d.label === s.label ? "confirmed" : "corrected";
  }
  function confColor(c) { return c < 0.6 ? "var(--bad)" : c < D.low ? "var(--warn)" : "var(--ok)"; }

  function rowHtml(s) {
    const d = decided(s), st = stateOf(s), c = Number(s.confidence || 0), note = (decisions[s.id] || {}).note || "";
    const geo = s.geo || {};
    const parts = ["series " + esc(s.series_number != null ? s.series_number : "?") + (s.split ? " · set " + esc(s.image_set) + " (" + esc(s.split) + ")" : ""),
      esc(s.n_images) + " images", geo.matrix, geo.spacing, geo.thickness && "slice " + geo.thickness, geo.plane, s.vendor && esc(s.vendor)];
    const timing = [];
    if (s.b_value != null) timing.push("b = " + esc(s.b_value) + " s/mm²" + (s.b_values ? " (acquisition b: " + esc(String(s.b_values).split("\\").join(", ")) + ")" : ""));
    if (s.dce_phase != null) timing.push("DCE time point " + (Number(s.dce_phase) + 1) + (s.n_timepoints ? " of " + esc(s.n_timepoints) : "") +
      (s.dce_seconds != null ? " · " + esc(s.dce_seconds) + " s after the first" : "") + (s.dce_timing ? " · from " + esc(s.dce_timing) : ""));
    const seq = [s.tr != null && "TR " + s.tr, s.te != null && "TE " + s.te, s.ti != null && "TI " + s.ti, s.flip != null && "FA " + s.flip + "°",
      s.fs ? "fat-sat (" + esc(s.fs) + ")" : null, s.image_type && esc(String(s.image_type).split("\\").join("/"))].filter(Boolean);
    const shownLabel = d && d.label !== s.label ? "<s>" + esc(s.label) + "</s> → " + esc(d.label) : esc(s.label);
    let truth = "";
    if (s.truth) truth = '<div class="truth ' + (s.truth === s.label ? "agree" : "differ") + '">truth table: ' + esc(s.truth) + (s.truth === s.label ? " ✓" : " ✗") + "</div>";
    let img = "";
    if (s.image_label) img = '<div class="sub">image model: ' + esc(s.image_label) + (s.image_confidence != null ? " (" + esc(s.image_confidence) + ")" : "") + "</div>";
    const buttons = D.labels.map((lab) => '<button type="button" data-label="' + esc(lab) + '" class="' + ((d ? d.label : "") === lab ? "on" : "") +
      '"><kbd>' + esc(D.keys[lab]) + "</kbd>" + esc(lab) + "</button>").join("");
    return '<div class="set ' + st + '" data-set-id="' + esc(s.id) + '" data-state="' + st + '" tabindex="-1">' +
      imgTag(s, "thumb", null) +
      '<div><div class="lab' + (isUnknown(s) && !d ? " unknown" : "") + '">' + shownLabel + "</div>" +
      '<div class="conf"><span class="bar"><i style="width:' + Math.round(c * 100) + "%;background:" + confColor(c) + '"></i></span>confidence ' + c.toFixed(2) + "</div>" +
      '<div class="state ' + st + '">' + (st === "todo" ? "not reviewed" : st === "confirmed" ? "✓ confirmed" : "✎ corrected") + (note ? " · “" + esc(note) + "”" : "") + "</div>" + truth + "</div>" +
      '<div class="meta"><div class="desc">' + esc(s.description || "(no description)") + "</div>" +
      '<div class="sub">' + parts.filter(Boolean).join(" · ") + "</div>" +
      (timing.length ? '<div class="sub">' + timing.join("<br>") + "</div>" : "") +
      (seq.length ? '<div class="sub">' + seq.join(" · ") + "</div>" : "") + img +
      '<div class="ev"><span class="src">' + esc(s.source || "header") + "</span>" + esc(String(s.evidence || "").replace(/^(header|image|both): /, "")) +
      (s.rule ? ' <span class="sub">(rule ' + esc(s.rule) + ")</span>" : "") + "</div>" +
      (s.why ? '<div class="why">thumbnail: ' + esc(s.why) + "</div>" : "") + "</div>" +
      '<div class="strip">' + stripHtml(s) + "</div>" +
      '<div class="buttons"><button type="button" class="confirm" data-confirm="1"><kbd>c</kbd>confirm ' + esc(s.label) + "</button>" + buttons +
      '<input type="text" class="note" placeholder="note (n)" value="' + esc(note) + '"></div></div>';
  }

  function passes(s) {
    const fl = $("f-label").value, fc = $("f-conf").value, fv = $("f-vendor").value, fs = $("f-state").value;
    if (fl !== "all" && s.label !== fl) return false;
    if (fc === "low" && !isLow(s)) return false;
    if (fc === "unknown" && !isUnknown(s)) return false;
    if (fc === "high" && isLow(s)) return false;
    if (fv !== "all" && (s.vendor || "") !== fv) return false;
    const st = stateOf(s);
    if (fs === "todo" && st !== "todo") return false;
    if (fs === "done" && st === "todo") return false;
    if (fs === "corrected" && st !== "corrected") return false;
    if (fs === "truth-differs" && !(s.truth && s.truth !== s.label)) return false;
    return true;
  }

  function render() {
    const attention = $("f-order").value === "attention";
    const seriesOrder = (a, b) => num(a.series_number, 1e9) - num(b.series_number, 1e9) || num(a.image_set, 0) - num(b.image_set, 0);
    const order = attention ? (a, b) => priority(a) - priority(b) || Number(a.confidence) - Number(b.confidence) || seriesOrder(a, b) : seriesOrder;
    const groups = D.studies.map((st) => ({st, sets: sets.filter((s) => s.study === st.study && passes(s)).sort(order)}))
      .filter((g) => g.sets.length);
    if (attention) groups.sort((a, b) => priority(a.sets[0]) - priority(b.sets[0]) || Number(a.sets[0].confidence) - Number(b.sets[0].confidence));
    visible = [];
    $("studies").innerHTML = groups.map((g) => {
      g.sets.forEach((s) => visible.push(s.id));
      const all = sets.filter((s) => s.study === g.st.study);
      const todo = all.filter((s) => isLow(s)).length;
      return '<section class="study" data-study="' + esc(g.st.study) + '"><h2>' + esc(g.st.study) + " · " + esc(g.st.vendor || "vendor ?") +
        " · " + all.length + " image sets" + (todo ? " · " + todo + " need review" : "") + "</h2>" + g.sets.map(rowHtml).join("") + "</section>";
    }).join("");
    $("empty").hidden = visible.length > 0;
    $("shown").textContent = visible.length + " of " + sets.length + " sets shown";
    if (!visible.includes(current)) current = visible[0] || null;
    select(current, false);
    summary();
  }

  function summary() {
    const n = sets.filter((s) => decided(s)).length;
    const corrected = sets.filter((s) => stateOf(s) === "corrected").length;
    const need = sets.filter(isLow).length;
    $("summary").textContent = D.studies.length + " studies · " + sets.length + " image sets · " + need +
      " UNKNOWN or low confidence · " + n + " reviewed (" + corrected + " corrected)";
    $("export").textContent = "Export truth table (" + n + ")";
    $("export").disabled = n === 0;
  }

  function rowEl(id) { return id == null ? null : document.querySelector('.set[data-set-id="' + CSS.escape(id) + '"]'); }
  function select(id, scroll) {
    document.querySelectorAll(".set.selected").forEach((e) => e.classList.remove("selected"));
    current = id;
    const el = rowEl(id);
    if (!el) return;
    el.classList.add("selected");
    if (scroll !== false) el.scrollIntoView({block: "nearest"});
  }
  function move(step) {
    if (!visible.length) return;
    const i = visible.indexOf(current);
    select(visible[Math.max(0, Math.min(visible.length - 1, (i < 0 ? 0 : i + step)))], true);
  }
  function redraw(id) {
    const el = rowEl(id);
    if (!el) return;
    const tmp = document.createElement("div");
    tmp.innerHTML = rowHtml(byId.get(id));
    el.replaceWith(tmp.firstChild);
    select(id, false);
    summary();
  }
  function decide(id, label) {
    const s = byId.get(id);
    if (!s) return;
    const note = decisions[id] ? decisions[id].note : "";
    decisions[id] = {label: label, note: note};
    save();
    redraw(id);
    move(1);
  }
  function undo(id) {
    const note = (decisions[id] || {}).note;
    if (note) decisions[id] = {note: note}; else delete decisions[id];
    save();
    redraw(id);
  }
  function setNote(id, text) {
    const s = byId.get(id);
    if (!s) return;
    const d = decisions[id] || {};
    d.note = text.trim();
    decisions[id] = d;
    save();
    redraw(id);
  }

  function csvCell(v) {
    const t = String(v == null ? "" : v);
    return /[",\r\n]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
  }
  function exportRows() {
    return sets.filter((s) => decided(s)).map((s) => {
      const d = decisions[s.id];
      const uids = String(s.uids || "").split(" ").filter(Boolean).map((u) => (s.uid_prefix || "") + u).join(" ");
      return {set_id: s.id, study: s.study, series_uid: s.series_uid, series_number: s.series_number, image_set: s.image_set,
        sop_instance_uids: uids, frames: s.frames || "", label: d.label, sorter_label: s.label,
        status: d.label === s.label ? "confirmed" : "corrected", note: d.note || ""};
    });
  }
  function exportCSV() {
    return [COLUMNS.join(",")].concat(exportRows().map((r) => COLUMNS.map((c) => csvCell(r[c])).join(","))).join("\r\n") + "\r\n";
  }
  window.reviewExportCSV = exportCSV;  // for scripts and tests

  function download() {
    const blob = new Blob([exportCSV()], {type: "text/csv"});
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "truth.csv";
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  }

  function agreementHtml(A) {
    const pct = (x) => (x.n ? (100 * x.accuracy).toFixed(1) + "% (" + (100 * x.ci_low).toFixed(1) + "–" + (100 * x.ci_high).toFixed(1) + ")" : "–");
    let m = "<table><tr><th>truth \\ sorter</th>" + A.labels.map((l) => "<th>" + esc(l) + "</th>").join("") + "</tr>";
    for (const t of A.labels) {
      if (!A.confusion[t]) continue;
      m += "<tr><td>" + esc(t) + "</td>" + A.labels.map((p) => '<td class="' + (p === t ? "diag" : "") + '">' + esc(A.confusion[t][p] || "") + "</td>").join("") + "</tr>";
    }
    m += "</table>";
    let a = "<table><tr><th>label</th><th>n</th><th>correct</th><th>accuracy (95% CI)</th></tr>";
    for (const [t, x] of Object.entries(A.per_label)) a += "<tr><td>" + esc(t) + "</td><td>" + x.n + "</td><td>" + x.correct + "</td><td>" + pct(x) + "</td></tr>";
    a += "<tr><td><b>overall</b></td><td>" + A.overall.n + "</td><td>" + A.overall.correct + "</td><td><b>" + pct(A.overall) + "</b></td></tr></table>";
    return m + a + '<div class="sub">' + esc(A.method || "") + (A.unmatched ? " · " + A.unmatched + " truth rows matched no set" : "") + "</div>";
  }

  function options(sel, values, allText) {
    sel.innerHTML = '<option value="all">' + esc(allText) + "</option>" + values.map(([v, n]) => '<option value="' + esc(v) + '">' + esc(v || "(none)") + " (" + n + ")</option>").join("");
  }
  function count(key) {
    const m = new Map();
    sets.forEach((s) => m.set(s[key] || "", (m.get(s[key] || "") || 0) + 1));
    return m;
  }
  function init() {
    const labels = count("label");
    options($("f-label"), D.labels.filter((l) => labels.has(l)).map((l) => [l, labels.get(l)]), "all labels");
    options($("f-vendor"), Array.from(count("vendor").entries()).sort(), "all vendors");
    $("keys").innerHTML = "<kbd>j</kbd>/<kbd>k</kbd> next/previous · <kbd>c</kbd> confirm · " +
      D.labels.map((l) => "<kbd>" + esc(D.keys[l]) + "</kbd> " + esc(l)).join(" ") + " · <kbd>n</kbd> note · <kbd>x</kbd> undo · <kbd>?</kbd> help";
    if (D.agreement) { $("agreement").hidden = false; $("agreement-body").innerHTML = agreementHtml(D.agreement); }
    ["f-label", "f-conf", "f-vendor", "f-state", "f-order"].forEach((id) => $(id).addEventListener("change", () => { render(); $(id).blur(); }));
    $("export").addEventListener("click", download);
    $("help-close").addEventListener("click", () => { $("help").hidden = true; });
    $("studies").addEventListener("click", (ev) => {
      const row = ev.target.closest(".set");
      if (!row) return;
      const id = row.dataset.setId;
      const jump = ev.target.closest("[data-jump]");
      const btn = ev.target.closest("button");
      if (btn && btn.dataset.label) decide(id, btn.dataset.label);
      else if (btn && btn.dataset.confirm) decide(id, byId.get(id).label);
      else if (jump && rowEl(jump.dataset.jump)) select(jump.dataset.jump, true);
      else if (!ev.target.closest("input")) select(id, false);
    });
    $("studies").addEventListener("keydown", (ev) => {
      if (!ev.target.classList.contains("note")) return;
      if (ev.key === "Enter" || ev.key === "Escape") {
        ev.preventDefault();
        const id = ev.target.closest(".set").dataset.setId;
        setNote(id, ev.target.value);
        ev.stopPropagation();
      }
    });
    document.addEventListener("keydown", (ev) => {
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const t = ev.target;
      if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT")) return;
      const k = ev.key;
      if (k === "Escape") { $("help").hidden = true; return; }
      if (k === "?") { $("help").hidden = !$("help").hidden; ev.preventDefault(); return; }
      if (k === "j" || k === "ArrowDown") { move(1); ev.preventDefault(); return; }
      if (k === "k" || k === "ArrowUp") { move(-1); ev.preventDefault(); return; }
      if (current == null) return;
      if (k === "c") decide(current, byId.get(current).label);
      else if (k === "x") undo(current);
      else if (k === "n") { const el = rowEl(current); if (el) { el.querySelector("input.note").focus(); ev.preventDefault(); } }
      else if (keyToLabel.has(k)) decide(current, keyToLabel.get(k));
      else return;
      ev.preventDefault();
    });
    render();
  }
  init();
})();
