/* Starts Swagger UI on /docs (an external file: the CSP forbids inline scripts).
 * "Try it out" with the session cookie sends the CSRF token from the crmsync_csrf cookie
 * on unsafe requests, as the web pages do. */
(function () {
  "use strict";
  var element = document.getElementById("swagger-ui");

  function csrfCookie() {
    var match = document.cookie.match(/(?:^|;\s*)crmsync_csrf=([^;]*)/);
    return match ? decodeURIComponent(match[1]) : null;
  }

  window.ui = SwaggerUIBundle({
    url: element.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    persistAuthorization: false,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    requestInterceptor: function (request) {
      var method = (request.method || "GET").toUpperCase();
      var token = csrfCookie();
      if (token && ["GET", "HEAD", "OPTIONS"].indexOf(method) < 0) {
        request.headers["X-CSRF-Token"] = token;
      }
      return request;
    }
  });
})();
