/* Starts ReDoc on /redoc (an external file: the CSP forbids inline scripts). */
(function () {
  "use strict";
  var element = document.getElementById("redoc");
  Redoc.init(
    element.getAttribute("data-openapi-url"),
    { hideDownloadButton: false, expandResponses: "200,201", nativeScrollbars: true },
    element
  );
})();
