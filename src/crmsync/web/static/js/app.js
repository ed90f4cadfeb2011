/* The web app's one script: htmx settings that every page needs.
 *
 * - Every htmx request that is not a GET carries the session's CSRF token as
 *   X-CSRF-Token, read from <meta name="csrf-token"> (base.html); forms that post
 *   without htmx carry it as a hidden csrf_token field instead.
 * - A failed htmx request (htmx swaps nothing then) says so in #notices.
 *
 * No inline scripts anywhere: the Content-Security-Policy allows only files from
 * /static. htmx runs with allowEval off, so no hx-on attributes and no [filters] in
 * hx-trigger; put such behaviour here.
 */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  document.addEventListener("htmx:configRequest", function (event) {
    var verb = (event.detail.verb || "get").toLowerCase();
    if (verb !== "get") {
      event.detail.headers["X-CSRF-Token"] = csrfToken();
    }
  });

  function notice(text, level) {
    var area = document.getElementById("notices");
    if (!area) {
      return;
    }
    var item = document.createElement("p");
    item.className = "notice notice-" + level;
    item.setAttribute("role", "alert");
    item.textContent = text;
    area.appendChild(item);
    window.setTimeout(function () {
      item.remove();
    }, 8000);
  }

  document.addEventListener("htmx:responseError", function (event) {
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    if (status === 401) {
      return; // htmx follows the HX-Redirect to the login page
    }
    var text = status === 403
      ? "That was not allowed. Reload the page and try again."
      : status === 404
        ? "That is no longer there. Reload the page."
        : "Something went wrong (" + status + "). Nothing was saved; please try again.";
    notice(text, "error");
  });

  document.addEventListener("htmx:sendError", function () {
    notice("The server could not be reached. Check your connection and try again.", "error");
  });
})();
