// report.html's own behaviour (no network, no library): a hint on tables wider than their
// box, and the round-trip tables: pick a strategy, filter, sort by any column, with the
// figures of the rows shown (expectancy, best and worst trade, holding time).
(function () {
  "use strict";

  function markOverflow() {
    document.querySelectorAll(".scroll").forEach(function (box) {
      box.classList.toggle("overflowing", box.scrollWidth > box.clientWidth + 1);
    });
  }
  window.addEventListener("load", markOverflow);
  window.addEventListener("resize", markOverflow);

  var source = document.getElementById("trade-data");
  if (!source) { return; }
  var data = JSON.parse(source.textContent);
  var cols = data.columns;
  var at = {};
  cols.forEach(function (c, i) { at[c.key] = i; });
  var picker = document.getElementById("trade-run");
  var filter = document.getElementById("trade-filter");
  var outcome = document.getElementById("trade-outcome");
  var table = document.getElementById("trade-table");
  var stats = document.getElementById("trade-stats");
  var sortKey = null, sortDown = false;

  function money(v) {
    return v === null ? "-" : v.toLocaleString("en-US", {minimumFractionDigits: 2,
                                                         maximumFractionDigits: 2});
  }
  function show(col, v) {
    if (v === null || v === undefined) { return col.key === "exit_time" ? "open" : "-"; }
    if (col.kind === "money") { return money(v); }
    if (col.kind === "percent") { return (100 * v).toFixed(2) + "%"; }
    if (col.kind === "price") { return v.toLocaleString("en-US", {maximumSignificantDigits: 8}); }
    if (col.kind === "days") { return v.toFixed(1); }
    return String(v).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function visibleRows() {
    var run = data.runs[Number(picker.value)];
    var words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    var want = outcome.value;
    var rows = run.rows.filter(function (row) {
      var pnl = row[at.pnl];
      if (want === "winners" && !(pnl > 0)) { return false; }
      if (want === "losers" && !(pnl <= 0)) { return false; }
      var text = row.map(function (v, i) { return show(cols[i], v); }).join(" ").toLowerCase();
      return words.every(function (w) { return text.indexOf(w) >= 0; });
    });
    if (sortKey !== null) {
      var i = at[sortKey];
      rows.sort(function (a, b) {
        var x = a[i], y = b[i];
        if (x === y) { return 0; }
        if (x === null) { return 1; }
        if (y === null) { return -1; }
        var order = x < y ? -1 : 1;
        return sortDown ? -order : order;
      });
    }
    return rows;
  }

  function summary(rows) {
    if (!rows.length) { return "No round trips match."; }
    var pnl = rows.map(function (r) { return r[at.pnl]; });
    var bars = rows.map(function (r) { return r[at.bars_held]; });
    var days = rows.map(function (r) { return r[at.days_held]; });
    var sum = function (xs) { return xs.reduce(function (a, b) { return a + b; }, 0); };
    var wins = pnl.filter(function (v) { return v > 0; }).length;
    return rows.length + " round trips: " + wins + " won (" +
      (100 * wins / rows.length).toFixed(1) + "%); expectancy " + money(sum(pnl) / rows.length) +
      " per trade; best " + money(Math.max.apply(null, pnl)) + ", worst " +
      money(Math.min.apply(null, pnl)) + "; held " + (sum(bars) / rows.length).toFixed(1) +
      " bars (" + (sum(days) / rows.length).toFixed(1) + " days) on average, at most " +
      Math.max.apply(null, bars) + " bars; P&L " + money(sum(pnl)) + ".";
  }

  function render() {
    var rows = visibleRows();
    stats.textContent = summary(rows);
    var body = table.tBodies[0];
    var html = [];
    rows.forEach(function (row) {
      html.push("<tr>" + row.map(function (v, i) {
        var col = cols[i];
        var cls = col.kind === "text" ? ' class="text"' :
          (col.key === "pnl" || col.key === "return") && v !== null ?
            (v > 0 ? ' class="up"' : v < 0 ? ' class="down"' : "") : "";
        return "<td" + cls + ">" + show(col, v) + "</td>";
      }).join("") + "</tr>");
    });
    body.innerHTML = html.join("");
    table.querySelectorAll("th").forEach(function (th) {
      var mark = th.dataset.key === sortKey ? (sortDown ? " \u25bc" : " \u25b2") : "";
      th.querySelector(".mark").textContent = mark;
    });
    markOverflow();
  }

  table.querySelectorAll("th").forEach(function (th) {
    th.addEventListener("click", function () {
      if (sortKey === th.dataset.key) { sortDown = !sortDown; } else {
        sortKey = th.dataset.key;
        sortDown = ["pnl", "return", "bars_held", "days_held", "fees"].indexOf(sortKey) >= 0;
      }
      render();
    });
  });
  [picker, outcome].forEach(function (el) { el.addEventListener("change", render); });
  filter.addEventListener("input", render);
  render();
})();
