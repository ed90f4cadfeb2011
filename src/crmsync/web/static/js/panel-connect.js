/* The side panel's connect dialog (/panel/connect): once the page shows a connect code,
 * hand it to the panel that opened this window.
 *
 * - As the Outlook add-in (Office.js is on the page only then): Office's messageParent,
 *   which Office delivers to the pane that called displayDialogAsync.
 * - In a browser: postMessage to window.opener, addressed to our own origin only, so a
 *   page of another site that opened this window never receives the code.
 * The code stays on the page either way, to be typed into the panel by hand.
 */
(function () {
  "use strict";

  var shown = document.getElementById("connect-code");
  var status = document.getElementById("connect-status");
  if (!shown) {
    return; // the page before the button press
  }
  var code = shown.getAttribute("data-code") || "";
  var outlook = shown.getAttribute("data-outlook") === "true" && typeof window.Office !== "undefined";

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function toOpener() {
    if (window.opener && !window.opener.closed) {
      window.opener.postMessage({ type: "crmsync-connect-code", code: code }, window.location.origin);
      say("Sent to the side panel. This window closes when it has connected; if it does not, type the code into the panel.");
    }
  }

  if (!outlook) {
    toOpener();
    return;
  }
  window.Office.onReady(function () {
    try {
      window.Office.context.ui.messageParent(code);
      say("Sent to the side panel. This window closes when it has connected.");
    } catch (error) {
      toOpener(); // ?host=outlook in a plain browser: no Office dialog to answer
    }
  });
})();
