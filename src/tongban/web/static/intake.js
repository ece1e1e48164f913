// Intake forms: live show/hide of conditional fields (the server decides again on every post), table rows
// added in place, and focus on the error summary. Everything works without this script.
(function () {
  "use strict";
  var form = document.querySelector("form[data-intake-form]");
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
  // A link of the error summary moves the focus to the control it names (not only the scroll position).
  document.addEventListener("click", function (event) {
    var link = event.target.closest(".error-summary a[href^='#'], .warning-summary a[href^='#']");
    var target = link && document.getElementById(link.getAttribute("href").slice(1));
    if (!target) { return; }
    event.preventDefault();
    (target.closest(".field") || target).scrollIntoView();
    target.focus({ preventScroll: true });
  });
  if (!form) { return; }

  // --- values as the form's expressions see them (money in fen, numbers as numbers) -----------------
  function valueOf(wrapper) {
    var key = wrapper.getAttribute("data-key");
    var type = wrapper.getAttribute("data-type");
    var named = form.querySelectorAll('[name="v.' + key + '"]');
    if (type === "multi_choice") {
      var out = [];
      named.forEach(function (el) {
        if (el.tagName === "SELECT") {
          Array.prototype.forEach.call(el.selectedOptions, function (o) { out.push(o.value); });
        } else if (el.checked) { out.push(el.value); }
      });
      return out.length ? out : undefined;
    }
    if (type === "choice") {
      for (var i = 0; i < named.length; i++) {
        var el = named[i];
        if (el.tagName === "SELECT") { return el.value || undefined; }
        if (el.checked) { return el.value; }
      }
      return undefined;
    }
    if (type === "boolean") { return named.length && named[0].checked ? true : undefined; }
    if (!named.length) { return undefined; }
    var text = (named[0].value || "").trim();
    if (!text) { return undefined; }
    if (type === "money") {
      var yuan = Number(text.replace(/[,，\s¥￥元]/g, ""));
      return isFinite(yuan) ? Math.round(yuan * 100) : undefined;
    }
    if (type === "integer" || type === "decimal") { var n = Number(text); return isFinite(n) ? n : undefined; }
    return text;
  }

  // --- a small JSON Logic interpreter (the operators conditions mostly use) ---------------------------
  function Unsupported() {}
  function truthy(v) { return Array.isArray(v) ? v.length > 0 : !!v; }
  function num(v) { return v === undefined || v === null || v === "" ? 0 : Number(v); }
  function evaluate(expr, data) {
    if (Array.isArray(expr)) { return expr.map(function (e) { return evaluate(e, data); }); }
    if (expr === null || typeof expr !== "object") { return expr; }
    var op = Object.keys(expr)[0];
    var raw = expr[op];
    var args = Array.isArray(raw) ? raw : [raw];
    var a = function (i) { return evaluate(args[i], data); };
    switch (op) {
      case "var": {
        var name = a(0);
        var found = data[String(name).split(".")[0]];
        if (String(name).indexOf(".") >= 0) { throw new Unsupported(); }
        return found === undefined ? (args.length > 1 ? a(1) : null) : found;
      }
      case "==": return a(0) == a(1); // eslint-disable-line eqeqeq
      case "!=": return a(0) != a(1); // eslint-disable-line eqeqeq
      case "===": return a(0) === a(1);
      case "!==": return a(0) !== a(1);
      case "<": return args.length === 3 ? num(a(0)) < num(a(1)) && num(a(1)) < num(a(2)) : num(a(0)) < num(a(1));
      case "<=": return args.length === 3 ? num(a(0)) <= num(a(1)) && num(a(1)) <= num(a(2)) : num(a(0)) <= num(a(1));
      case ">": return num(a(0)) > num(a(1));
      case ">=": return num(a(0)) >= num(a(1));
      case "!": return !truthy(a(0));
      case "!!": return truthy(a(0));
      case "and": { var last; for (var i = 0; i < args.length; i++) { last = a(i); if (!truthy(last)) { return last; } } return last; }
      case "or": { var v; for (var j = 0; j < args.length; j++) { v = a(j); if (truthy(v)) { return v; } } return v; }
      case "if": {
        var k = 0;
        for (; k + 1 < args.length; k += 2) { if (truthy(a(k))) { return a(k + 1); } }
        return k < args.length ? a(k) : null;
      }
      case "in": { var hay = a(1); return hay !== null && hay !== undefined && hay.indexOf(a(0)) >= 0; }
      case "missing": {
        var names = Array.isArray(args[0]) ? args[0] : args;
        return names.filter(function (nm) { var x = data[nm]; return x === undefined || x === null || x === ""; });
      }
      case "+": return args.reduce(function (s, _e, i) { return s + num(a(i)); }, 0);
      case "*": return args.reduce(function (s, _e, i) { return s * num(a(i)); }, 1);
      case "-": return args.length === 1 ? -num(a(0)) : num(a(0)) - num(a(1));
      case "/": return num(a(0)) / num(a(1));
      case "min": return Math.min.apply(null, args.map(function (_e, i) { return num(a(i)); }));
      case "max": return Math.max.apply(null, args.map(function (_e, i) { return num(a(i)); }));
      case "cat": return args.map(function (_e, i) { var x = a(i); return x === null || x === undefined ? "" : String(x); }).join("");
      default: throw new Unsupported();
    }
  }

  var wrappers = Array.prototype.slice.call(form.querySelectorAll("[data-key]"));
  function refresh() {
    var data = {};
    wrappers.forEach(function (w) {
      if (!w.hidden) { var v = valueOf(w); if (v !== undefined) { data[w.getAttribute("data-key")] = v; } }
    });
    wrappers.forEach(function (w) {
      var cond = w.getAttribute("data-show-if");
      if (!cond) { return; }
      try {
        var show = truthy(evaluate(JSON.parse(cond), data));
        w.hidden = !show;
        if (show) { var v = valueOf(w); if (v !== undefined) { data[w.getAttribute("data-key")] = v; } }
        else { delete data[w.getAttribute("data-key")]; }
      } catch (e) {
        if (!(e instanceof Unsupported)) { throw e; }
      }
    });
  }
  form.addEventListener("change", refresh);
  form.addEventListener("input", refresh);

  // --- add a table row in place ----------------------------------------------------------------------
  form.addEventListener("click", function (event) {
    var button = event.target.closest("[data-add-row]");
    if (!button) { return; }
    var key = button.getAttribute("data-add-row");
    var body = form.querySelector('table[data-table="' + key + '"] tbody');
    var count = button.closest("fieldset").querySelector("[data-row-count]");
    var last = body && body.lastElementChild;
    if (!last || !count) { return; }
    event.preventDefault();
    var old = Number(last.getAttribute("data-row"));
    var n = Number(count.value);
    var row = last.cloneNode(true);
    var ids = new RegExp("^(f|r|m)-" + key + "-" + old + "(?=-|$)");
    var names = "v." + key + "." + old + ".";
    row.setAttribute("data-row", String(n));
    row.querySelectorAll(".field-error, .field-warning").forEach(function (el) { el.remove(); });
    row.querySelectorAll("*").forEach(function (el) {
      if (el.id) { el.id = el.id.replace(ids, "$1-" + key + "-" + n); }
      ["aria-labelledby", "aria-describedby"].forEach(function (attr) {
        var value = el.getAttribute(attr);
        if (value === null) { return; }
        var kept = value.split(/\s+/).filter(function (id) { return id.indexOf("m-") !== 0; })
          .map(function (id) { return id.replace(ids, "$1-" + key + "-" + n); });
        if (kept.length) { el.setAttribute(attr, kept.join(" ")); } else { el.removeAttribute(attr); }
      });
      var name = el.getAttribute("name");
      if (name && name.indexOf(names) === 0) { el.setAttribute("name", "v." + key + "." + n + "." + name.slice(names.length)); }
      el.removeAttribute("aria-invalid");
      el.removeAttribute("autofocus");
      if (el.tagName === "INPUT" && (el.type === "checkbox" || el.type === "radio")) { el.checked = false; }
      else if (el.tagName === "INPUT" || el.tagName === "TEXTAREA") { el.value = ""; }
      else if (el.tagName === "SELECT") { Array.prototype.forEach.call(el.options, function (o) { o.selected = false; }); }
      else if (el.tagName === "OUTPUT") { el.textContent = ""; }
    });
    var header = row.querySelector("th[scope=row]");
    if (header) { header.textContent = String(n + 1); }
    body.appendChild(row);
    count.value = String(n + 1);
    var first = row.querySelector("input, select, textarea");
    if (first) { first.focus(); }
  });
  refresh();
}());
