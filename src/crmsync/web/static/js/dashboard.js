/* The performance dashboard (templates/admin/dashboard.html): draws its four charts with
 * the vendored uPlot (static/vendor/uplot), from the JSON at #dash-charts[data-src]
 * (web/pages/admin_dashboard.py chart_data):
 *   {buckets: [epoch s…], bucketSeconds, tracked, failed, sent, pushMedian, pushP95,
 *    lag: [{mailbox, values}]}
 * A chart with nothing to draw shows its empty note instead. The profile filter submits
 * itself when changed. No inline script or style anywhere: uPlot sizes its elements
 * through the CSSOM, which the Content-Security-Policy allows. */
(function () {
  "use strict";

  var COLORS = {
    tracked: "#17804a",
    failed: "#c0392b",
    sent: "#2f54eb",
    median: "#2f54eb",
    p95: "#a15c00",
    lag: ["#2f54eb", "#17804a", "#a15c00", "#8e44ad", "#c0392b", "#16a2b8", "#5d667a", "#d35400"],
  };
  var HEIGHT = 230;

  function utc(ts) {
    return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC");
  }

  function duration(seconds) {
    if (seconds == null) return "–";
    if (seconds === 0) return "0";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 90) return (Math.round(seconds * 10) / 10) + " s";
    if (seconds < 5400) return Math.round(seconds / 60) + " min";
    if (seconds < 172800) return (Math.round(seconds / 360) / 10) + " h";
    return (Math.round(seconds / 8640) / 10) + " d";
  }

  function count(value) {
    return value == null ? "–" : String(Math.round(value));
  }

  function hasData(series) {
    return series.some(function (values) {
      return values.some(function (v) { return v != null && v > 0; });
    });
  }

  function xScale(data) {
    // Bars are centred on their bucket: half a bucket of room on either side.
    var half = data.bucketSeconds / 2;
    var first = data.buckets[0];
    var last = data.buckets[data.buckets.length - 1];
    return { time: true, range: function () { return [first - half, last + half]; } };
  }

  function axes(data, format) {
    // Hours and minutes for the day; day and month for the longer windows (UTC).
    var label = uPlot.fmtDate(data.bucketSeconds < 86400 && data.window === "24h" ? "{HH}:{mm}" : "{D} {MMM}");
    return [
      {
        stroke: "#5d667a",
        grid: { stroke: "#eef0f5" },
        ticks: { stroke: "#e2e5ee" },
        space: data.window === "24h" ? 50 : 64,
        values: function (u, splits) { return splits.map(function (ts) { return label(utc(ts)); }); },
      },
      {
        stroke: "#5d667a",
        grid: { stroke: "#eef0f5" },
        ticks: { stroke: "#e2e5ee" },
        size: 64,
        values: function (u, splits) { return splits.map(format); },
      },
    ];
  }

  function bars(align) {
    return uPlot.paths.bars({ size: [0.38, 28], align: align, gap: 1 });
  }

  function barSeries(label, color, align) {
    return {
      label: label,
      stroke: color,
      fill: color + "cc",
      width: 0,
      paths: bars(align),
      points: { show: false },
      value: function (u, v) { return count(v); },
    };
  }

  function lineSeries(label, color, dash) {
    return {
      label: label,
      stroke: color,
      width: 2,
      dash: dash,
      spanGaps: true,
      points: { show: true, size: 5, fill: color },
      value: function (u, v) { return duration(v); },
    };
  }

  function build(kind, data) {
    var x = data.buckets;
    if (kind === "messages") {
      return {
        opts: {
          series: [{}, barSeries("Tracked", COLORS.tracked, -1), barSeries("Failed", COLORS.failed, 1)],
          scales: { x: xScale(data), y: { range: function (u, min, max) { return [0, Math.max(4, max * 1.1)]; } } },
          axes: axes(data, count),
        },
        data: [x, data.tracked, data.failed],
        empty: !hasData([data.tracked, data.failed]),
      };
    }
    if (kind === "sent") {
      return {
        opts: {
          series: [{}, barSeries("Sent", COLORS.sent, 0)],
          scales: { x: xScale(data), y: { range: function (u, min, max) { return [0, Math.max(4, max * 1.1)]; } } },
          axes: axes(data, count),
        },
        data: [x, data.sent],
        empty: !hasData([data.sent]),
      };
    }
    if (kind === "lag") {
      var series = [{}];
      var values = [x];
      data.lag.forEach(function (line, i) {
        series.push(lineSeries(line.mailbox, COLORS.lag[i % COLORS.lag.length]));
        values.push(line.values);
      });
      return {
        opts: {
          series: series,
          scales: { x: xScale(data), y: { range: function (u, min, max) { return [0, Math.max(60, max * 1.15)]; } } },
          axes: axes(data, duration),
        },
        data: values,
        empty: data.lag.length === 0,
      };
    }
    return {
      opts: {
        series: [{}, lineSeries("Median", COLORS.median), lineSeries("95th percentile", COLORS.p95, [6, 4])],
        scales: { x: xScale(data), y: { range: function (u, min, max) { return [0, Math.max(1, max * 1.15)]; } } },
        axes: axes(data, duration),
      },
      data: [x, data.pushMedian, data.pushP95],
      empty: !data.pushMedian.some(function (v) { return v != null; }),
    };
  }

  function draw(root, data) {
    var charts = [];
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var chart = build(el.getAttribute("data-chart"), data);
      var note = el.parentElement.querySelector(".dash-chart-empty");
      if (chart.empty) {
        el.hidden = true;
        if (note) note.hidden = false;
        return;
      }
      var opts = chart.opts;
      opts.width = Math.max(240, el.clientWidth);
      opts.height = HEIGHT;
      opts.tzDate = utc;
      opts.cursor = { points: { size: 7 } };
      opts.legend = { live: true };
      charts.push({ el: el, plot: new uPlot(opts, chart.data, el) });
    });
    var pending = null;
    window.addEventListener("resize", function () {
      clearTimeout(pending);
      pending = setTimeout(function () {
        charts.forEach(function (c) { c.plot.setSize({ width: Math.max(240, c.el.clientWidth), height: HEIGHT }); });
      }, 120);
    });
  }

  function failed(root) {
    var note = document.createElement("p");
    note.className = "notice notice-error";
    note.textContent = "The charts could not be loaded. Reload the page to try again.";
    root.prepend(note);
  }

  function start() {
    var form = document.querySelector("form[data-autosubmit]");
    if (form) {
      var button = form.querySelector("button[type=submit]");
      if (button) button.hidden = true;
      form.querySelector("select").addEventListener("change", function () { form.requestSubmit(); });
    }
    var root = document.getElementById("dash-charts");
    if (!root || typeof uPlot === "undefined") return;
    fetch(root.getAttribute("data-src"), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        draw(root, data);
        root.setAttribute("data-drawn", "true");
      })
      .catch(function () { failed(root); });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
