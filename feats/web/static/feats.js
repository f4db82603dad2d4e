// feats web admin: optional enhancements. Every page works without this file.
// Live updates (server-sent events, polling as the fallback), weight totals and the live
// "what this changes" figure of the editors. No innerHTML with data: text goes in as text.
(function () {
  "use strict";
  var body = document.body;
  var dot = document.getElementById("live-dot");
  var note = document.getElementById("live-note");

  function say(text) {
    if (!note) return;
    note.textContent = text;
    note.hidden = false;
  }

  function setLive(state) {
    body.setAttribute("data-live-state", state);
    if (dot) {
      dot.className = "live-dot " + (state === "connected" || state === "polling" ? "on" : "off");
      dot.title = "live updates: " + state;
    }
  }

  function describe(change) {
    var text = change.feature + " changed: version " + change.version + " by " + change.author;
    if (change.reason) text += " (" + change.reason + ")";
    return text;
  }

  // A change that comes while the page fetches itself may be newer than what that fetch
  // gets: it is kept, and the page fetches itself again once the fetch in flight is done.
  var refreshing = false;
  var pending = null;
  function refresh(message) {
    if (refreshing) { pending = message; return; }
    refreshing = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.text();
      })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var main = fresh.querySelector("main");
        var current = document.querySelector("main");
        if (main && current) current.replaceWith(document.adoptNode(main));
        var version = fresh.body.getAttribute("data-version");
        if (version !== null) body.setAttribute("data-version", version);
        bindEditors();
        if (message) say(message);
      })
      .catch(function () { if (message) say(message + " (reload the page to see it)"); })
      .then(function () {
        refreshing = false;
        if (pending !== null) { var next = pending; pending = null; refresh(next); }
      });
  }

  function onChange(change) {
    var feature = body.getAttribute("data-feature");
    if (feature && change.feature !== feature) return;
    var mode = body.getAttribute("data-live");
    if (mode === "refresh") {
      refresh(describe(change));
    } else {
      say(describe(change) + ". This page was made from an earlier version: applying will show both sides and write nothing.");
    }
  }

  function poll() {
    var url = body.getAttribute("data-state");
    if (!url) return;
    setLive("polling");
    var known = body.getAttribute("data-version") || "";
    // Every 750 ms: a change then shows within a second, the page's own fetch included.
    window.setInterval(function () {
      fetch(url, { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          setLive(data ? "polling" : "offline");
          if (!data || data.version === known) return;
          known = data.version;
          onChange({ feature: body.getAttribute("data-feature") || "a feature", version: data.version, author: "someone", reason: "" });
        })
        .catch(function () { setLive("offline"); });
    }, 750);
  }

  function live() {
    var url = body.getAttribute("data-events");
    if (!url) return;
    if (!window.EventSource) { poll(); return; }
    var failures = 0;
    var source = new EventSource(url, { withCredentials: true });
    source.addEventListener("ready", function () { failures = 0; setLive("connected"); });
    source.addEventListener("change", function (event) { onChange(JSON.parse(event.data)); });
    source.addEventListener("problem", function () { setLive("reconnecting"); });
    source.onerror = function () {
      failures += 1;
      setLive("reconnecting");
      if (failures >= 3) { source.close(); poll(); }
    };
  }

  // -- editors ----------------------------------------------------------------------------

  function debounce(fn, ms) {
    var timer = null;
    return function () { window.clearTimeout(timer); timer = window.setTimeout(fn, ms); };
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function showPlan(out, data) {
    out.replaceChildren();
    if (!data.ok) { out.appendChild(element("p", "error", data.error)); return; }
    if (!data.diff.length) { out.appendChild(element("p", "muted", "No change.")); return; }
    var list = element("ul", "diff");
    data.diff.forEach(function (line) {
      var item = element("li", line.op === "+" ? "opadd" : line.op === "-" ? "opdel" : "opchg");
      var text = line.op === "+" ? line.after : line.op === "-" ? line.before : line.before + " → " + line.after;
      item.appendChild(element("b", "", line.where + ": "));
      item.appendChild(document.createTextNode(text));
      if (line.note) item.appendChild(element("div", "note", line.note));
      list.appendChild(item);
    });
    out.appendChild(list);
    if (data.stale) out.appendChild(element("p", "error", "The feature changed since this page was made (now " + data.version + ")."));
  }

  function bindEditor(form) {
    if (form.getAttribute("data-bound")) return;
    form.setAttribute("data-bound", "1");
    var planUrl = form.getAttribute("data-plan");
    var box = document.getElementById("live-plan");
    var out = document.getElementById("plan-out");
    var total = document.getElementById("total");
    var numbers = Array.prototype.slice.call(form.querySelectorAll("input.pct"));

    function updateTotal() {
      if (!total) return;
      var sum = numbers.reduce(function (acc, input) { return acc + (parseFloat(input.value) || 0); }, 0);
      sum = Math.round(sum * 1000) / 1000;
      total.textContent = String(sum);
      total.parentNode.className = "total " + (Math.abs(sum - 100) < 1e-6 ? "good" : "bad");
    }

    var askPlan = debounce(function () {
      if (!planUrl || !out) return;
      var fields = new URLSearchParams(new FormData(form));
      fields.delete("csrf");
      fetch(planUrl + "?" + fields.toString(), { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) { if (data) { box.hidden = false; showPlan(out, data); } })
        .catch(function () {});
    }, 200);

    // The weights are written in the order they are filled in ("aperture 5%, acme 95%", as
    // one types it for the CLI); a rule being edited comes with its own order already here.
    var order = document.getElementById("weight-order");
    function filledIn(number) {
      if (!order) return;
      var name = number.name.slice("weight.".length);
      var names = order.value ? order.value.split(",") : [];
      if (names.indexOf(name) < 0) { names.push(name); order.value = names.join(","); }
    }

    form.querySelectorAll("input[type=range]").forEach(function (slider) {
      var number = document.getElementById(slider.getAttribute("data-for"));
      slider.addEventListener("input", function () { number.value = slider.value; filledIn(number); updateTotal(); askPlan(); });
      number.addEventListener("input", function () { slider.value = number.value; filledIn(number); updateTotal(); });
    });
    // The hint names the segment the split reads: the one chosen now.
    var by = form.querySelector("select.by");
    var byName = form.querySelector(".by-name");
    if (by && byName) by.addEventListener("change", function () { byName.textContent = by.value; });
    form.addEventListener("input", askPlan);
    form.addEventListener("change", askPlan);
    updateTotal();
    askPlan();
  }

  function bindEditors() {
    var form = document.getElementById("editor");
    if (form) bindEditor(form);
  }

  bindEditors();
  live();
})();
