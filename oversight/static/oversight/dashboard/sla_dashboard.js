/*
 * The SLA dashboard's charts, drawn with the vendored Chart.js from the figures the page
 * carries in <script type="application/json" id="sla-dashboard-charts"> (json_script).
 *
 * The tables are the truth: without JavaScript, or without Chart.js, the page shows them only
 * and the chart areas stay hidden. No inline script anywhere, so the page works under a
 * Content-Security-Policy without 'unsafe-inline'.
 */
"use strict";

(function () {
  function axes(spec) {
    var y = { beginAtZero: true, stacked: Boolean(spec.stacked), ticks: { precision: 0 } };
    if (spec.percent) {
      y = {
        min: 0,
        max: 100,
        ticks: {
          callback: function (value) {
            return value + " %";
          },
        },
      };
    }
    return { x: { stacked: Boolean(spec.stacked) }, y: y };
  }

  function draw() {
    var source = document.getElementById("sla-dashboard-charts");
    if (!source || typeof window.Chart !== "function") {
      return;
    }
    JSON.parse(source.textContent).forEach(function (spec) {
      var canvas = document.getElementById("chart-" + spec.name);
      if (!canvas) {
        return;
      }
      canvas.parentElement.hidden = false;
      new window.Chart(canvas, {
        type: spec.type,
        data: {
          labels: spec.labels,
          datasets: spec.datasets.map(function (set) {
            return {
              label: set.label,
              data: set.data,
              backgroundColor: set.colour,
              borderColor: set.colour,
              spanGaps: true,
            };
          }),
        },
        options: {
          responsive: true,
          maintainAspectRatio: false,
          animation: false,
          plugins: { title: { display: true, text: spec.title } },
          scales: axes(spec),
        },
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
