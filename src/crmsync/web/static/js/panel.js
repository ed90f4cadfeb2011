/* The side panel (/panel): who the people in an email are in the CRM, and the email's
 * tracking, beside the email in a mail client.
 *
 * - The email comes from Office.context.mailbox.item when the page runs as the Outlook
 *   add-in (Office.js is on the page only then), else from the query string:
 *   ?message_id=<…>&from=…&to=…&cc=…&subject=… (from/to/cc may repeat).
 * - Every call goes to the JSON API with the panel token (localStorage) as
 *   "Authorization: Bearer", never with the cookie (credentials: "omit"): inside Outlook
 *   the pane is a third-party frame. A 401 means the token was revoked or expired: the
 *   panel forgets it and offers to connect again.
 * - Connecting: a dialog at /panel/connect (Office's displayDialogAsync in Outlook, a
 *   popup elsewhere) hands over a one-time code (messageParent, or postMessage from our
 *   own origin only), or the person types it; POST /api/v1/panel/tokens exchanges it.
 * - What the API answers is shown with textContent and DOM methods only, never as HTML.
 */
(function () {
  "use strict";

  var API = "/api/v1";
  var TOKEN_KEY = "crmsync.panelToken";
  var CODE_MESSAGE = "crmsync-connect-code";
  var SEARCH_DELAY_MS = 250;
  var NOTICE_MS = 6000;
  var TYPE_LABELS = {
    account: "Account",
    contact: "Contact",
    lead: "Lead",
    opportunity: "Opportunity",
    "case": "Case",
    user: "Colleague",
    queue: "Queue"
  };
  var ROLE_LABELS = { from: "From", to: "To", cc: "Cc" };

  var root = document.getElementById("panel");
  if (!root) {
    return;
  }
  var outlook = root.getAttribute("data-outlook") === "true" && typeof window.Office !== "undefined";
  var recordPages = JSON.parse(root.getAttribute("data-record-pages") || "{}");
  var emailPage = root.getAttribute("data-email-page") || "/emails/";
  var connectUrl = root.getAttribute("data-connect-url") || "/panel/connect";
  var regions = {
    loading: document.getElementById("panel-loading"),
    connect: document.getElementById("panel-connect"),
    main: document.getElementById("panel-main"),
    email: document.getElementById("panel-email"),
    people: document.getElementById("panel-people"),
    noEmail: document.getElementById("panel-no-email"),
    account: document.getElementById("panel-account"),
    notices: document.getElementById("notices")
  };
  var memoryToken = null; // when the browser refuses localStorage
  var popup = null;
  var dialog = null;
  var item = null; // the email beside the panel: {messageId, from, to, cc, subject}

  /* ---- the panel token ------------------------------------------------- */

  function token() {
    try {
      return window.localStorage.getItem(TOKEN_KEY) || memoryToken;
    } catch (error) {
      return memoryToken;
    }
  }

  function keepToken(value) {
    memoryToken = value;
    try {
      window.localStorage.setItem(TOKEN_KEY, value);
    } catch (error) {
      /* kept in memory for this page only */
    }
  }

  function forgetToken() {
    memoryToken = null;
    try {
      window.localStorage.removeItem(TOKEN_KEY);
    } catch (error) {
      /* nothing kept */
    }
  }

  /* ---- building the page ------------------------------------------------ */

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined && text !== null) {
      node.textContent = text;
    }
    return node;
  }

  function button(text, className, onClick) {
    var node = el("button", "button " + (className || ""), text);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  function clear(node) {
    while (node.firstChild) {
      node.removeChild(node.firstChild);
    }
  }

  function show(which) {
    regions.loading.hidden = which !== "loading";
    regions.connect.hidden = which !== "connect";
    regions.main.hidden = which !== "main";
    regions.noEmail.hidden = which !== "none";
    regions.account.hidden = which === "connect" || which === "loading";
  }

  var noticeTimer = null;

  function notice(text, level) {
    window.clearTimeout(noticeTimer);
    clear(regions.notices);
    if (!text) {
      return;
    }
    var message = el("p", "notice notice-" + (level || "info"), text);
    message.setAttribute("role", level === "error" ? "alert" : "status");
    regions.notices.appendChild(message);
    if (level === "success") {
      // Done is done: in a pane this narrow the message would push the email down.
      noticeTimer = window.setTimeout(function () {
        message.remove();
      }, NOTICE_MS);
    }
  }

  function recordLink(type, id, name) {
    var page = recordPages[type];
    if (!page) {
      return el("span", "panel-record-name", name);
    }
    var link = el("a", "panel-record-name", name);
    link.href = "/" + page + "/" + id;
    link.target = "_blank";
    link.rel = "noopener";
    return link;
  }

  function badge(text, kind) {
    return el("span", "panel-badge panel-badge-" + kind, text);
  }

  /* ---- talking to the API ------------------------------------------------ */

  function ApiError(status, detail) {
    this.status = status;
    this.detail = detail;
  }

  function api(method, path, body, withoutToken) {
    var headers = { Accept: "application/json" };
    if (!withoutToken) {
      headers.Authorization = "Bearer " + token();
    }
    var init = { method: method, headers: headers, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return window.fetch(API + path, init).then(
      function (response) {
        var type = response.headers.get("content-type") || "";
        var parsed = type.indexOf("json") >= 0 ? response.json() : Promise.resolve(null);
        return parsed.then(function (data) {
          if (response.ok) {
            return data;
          }
          if (response.status === 401 && !withoutToken) {
            disconnected(
              "This panel's connection to crmsync has ended: it was revoked or it expired. Connect again."
            );
          }
          var detail = data && (data.detail || data.title);
          throw new ApiError(response.status, detail || "The server answered " + response.status + ".");
        });
      },
      function () {
        throw new ApiError(0, "crmsync could not be reached. Check your connection and try again.");
      }
    );
  }

  function failed(error) {
    if (error instanceof ApiError) {
      if (error.status !== 401) {
        notice(error.detail, "error"); // a 401 has put the panel back to "Connect" already
      }
      return;
    }
    notice("Something went wrong in the panel: " + error, "error");
  }

  function busy(node, running) {
    node.disabled = running;
    node.setAttribute("aria-busy", running ? "true" : "false");
  }

  /* ---- the email beside the panel ---------------------------------------- */

  function officeAddress(details) {
    if (!details || !details.emailAddress) {
      return "";
    }
    // Quoted, so a "Doe, Ann" display name is not read as two addresses.
    var name = (details.displayName || "").replace(/["\\]/g, "");
    return name ? '"' + name + '" <' + details.emailAddress + ">" : details.emailAddress;
  }

  function officeItem() {
    var current = window.Office.context.mailbox.item;
    if (!current) {
      return { messageId: "", from: [], to: [], cc: [], subject: "" };
    }
    return {
      messageId: current.internetMessageId || "",
      from: [officeAddress(current.from)].filter(Boolean),
      to: (current.to || []).map(officeAddress).filter(Boolean),
      cc: (current.cc || []).map(officeAddress).filter(Boolean),
      subject: typeof current.subject === "string" ? current.subject : ""
    };
  }

  function queryItem() {
    var query = new URLSearchParams(window.location.search);
    return {
      messageId: query.get("message_id") || "",
      from: query.getAll("from").filter(Boolean),
      to: query.getAll("to").filter(Boolean),
      cc: query.getAll("cc").filter(Boolean),
      subject: query.get("subject") || ""
    };
  }

  function lookupPath() {
    var query = new URLSearchParams();
    if (item.messageId) {
      query.append("message_id", item.messageId);
    }
    ["from", "to", "cc"].forEach(function (role) {
      item[role].forEach(function (value) {
        query.append(role, value);
      });
    });
    if (item.subject) {
      query.append("subject", item.subject);
    }
    return "/panel/lookup?" + query.toString();
  }

  function refresh() {
    if (!token()) {
      show("connect");
      return Promise.resolve();
    }
    if (!item.messageId && !item.from.length && !item.to.length && !item.cc.length) {
      show("none");
      return Promise.resolve();
    }
    return api("GET", lookupPath()).then(function (found) {
      renderEmail(found.email);
      renderPeople(found.people);
      show("main");
    }, failed);
  }

  /* ---- the email card ---------------------------------------------------- */

  function renderEmail(email) {
    var card = regions.email;
    clear(card);
    var head = el("div", "panel-email-head");
    if (email.state === "tracked") {
      head.appendChild(badge("Tracked", "success"));
    } else if (email.state === "seen") {
      head.appendChild(badge("Not tracked", "neutral"));
    } else {
      head.appendChild(badge("Not in crmsync", "neutral"));
    }
    card.appendChild(head);
    card.appendChild(el("h1", "panel-subject", email.subject || "(no subject)"));

    if (email.state === "tracked") {
      var regarding = el("p", "panel-regarding");
      regarding.appendChild(el("span", "muted", "Regarding "));
      if (email.regarding) {
        regarding.appendChild(
          recordLink(email.regarding.record_type, email.regarding.id, email.regarding.name)
        );
        regarding.appendChild(
          el("span", "muted", " · " + (TYPE_LABELS[email.regarding.record_type] || ""))
        );
      } else {
        regarding.appendChild(el("span", "muted", "no record yet"));
      }
      regarding.id = "panel-regarding";
      card.appendChild(regarding);
      var actions = el("div", "panel-actions");
      if (email.can_write) {
        actions.appendChild(
          button("Set regarding", "button-primary", function () {
            openRegarding(card, email);
          })
        );
        actions.appendChild(
          button("Untrack", "", function (event) {
            confirmUntrack(actions, email, event.currentTarget);
          })
        );
      }
      var open = el("a", "panel-open", "Open in crmsync ↗");
      open.href = emailPage + email.email_id;
      open.target = "_blank";
      open.rel = "noopener";
      head.appendChild(open);
      if (actions.firstChild) {
        card.appendChild(actions);
      }
      return;
    }
    if (email.state === "seen") {
      if (email.reason) {
        card.appendChild(el("p", "panel-reason muted", "Not tracked because " + email.reason));
      }
      var track = button("Track", "button-primary button-block", function () {
        busy(track, true);
        api("POST", "/emails/track", { message_id: email.message_id })
          .then(
            function () {
              notice("The email is tracked.", "success");
            },
            function (error) {
              // ALREADY_TRACKED: someone (or a sync) was quicker; the lookup shows it.
              if (!(error instanceof ApiError && error.status === 409)) {
                throw error;
              }
            }
          )
          .then(refresh)
          .catch(failed)
          .then(function () {
            busy(track, false);
          });
      });
      card.appendChild(track);
      return;
    }
    card.appendChild(
      el(
        "p",
        "muted",
        email.message_id
          ? "No mailbox you can see in crmsync has this email yet. Once it is synced, you can track it here."
          : "This email has no Message-ID, so crmsync cannot track it."
      )
    );
  }

  function confirmUntrack(actions, email, trigger) {
    var ask = el("div", "panel-confirm");
    ask.appendChild(
      el("p", "", "Untrack this email? It leaves crmsync and is not tracked again from any mailbox.")
    );
    var yes = button("Untrack", "button-danger", function () {
      busy(yes, true);
      api("POST", "/emails/" + email.email_id + "/untrack")
        .then(function () {
          notice("The email is no longer tracked.", "success");
          return refresh();
        })
        .catch(failed);
    });
    var no = button("Cancel", "button-subtle", function () {
      ask.remove();
      trigger.disabled = false;
    });
    ask.appendChild(yes);
    ask.appendChild(no);
    trigger.disabled = true;
    actions.after(ask);
  }

  function openRegarding(card, email) {
    if (card.querySelector(".panel-search")) {
      card.querySelector(".panel-search input").focus();
      return;
    }
    var box = el("div", "panel-search");
    var label = el("label", "visually-hidden", "Find the record this email regards");
    label.htmlFor = "regarding-q";
    var input = el("input");
    input.type = "search";
    input.id = "regarding-q";
    input.placeholder = "Search accounts, contacts, cases…";
    input.autocomplete = "off";
    input.maxLength = 200;
    var results = el("ul", "panel-search-results");
    results.setAttribute("aria-live", "polite");
    box.appendChild(label);
    box.appendChild(input);
    box.appendChild(results);
    card.appendChild(box);
    input.focus();

    var timer = null;
    var asked = 0;
    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(function () {
        var q = input.value.trim();
        var mine = ++asked;
        if (!q) {
          clear(results);
          return;
        }
        var query = new URLSearchParams({ q: q, limit: "8" });
        ["account", "contact", "lead", "opportunity", "case"].forEach(function (type) {
          query.append("types", type);
        });
        api("GET", "/search?" + query.toString()).then(function (found) {
          if (mine !== asked) {
            return; // an older answer arriving late
          }
          renderHits(results, found.items, email);
        }, failed);
      }, SEARCH_DELAY_MS);
    });
  }

  function renderHits(results, hits, email) {
    clear(results);
    if (!hits.length) {
      results.appendChild(el("li", "panel-search-none muted", "Nothing found."));
      return;
    }
    hits.forEach(function (hit) {
      var choose = el("button", "panel-hit");
      choose.type = "button";
      choose.appendChild(el("span", "panel-hit-title", hit.title));
      var sub = TYPE_LABELS[hit.record_type] + (hit.subtitle ? " · " + hit.subtitle : "");
      choose.appendChild(el("span", "panel-hit-sub muted", sub));
      choose.addEventListener("click", function () {
        busy(choose, true);
        var body = { regarding_type: hit.record_type, regarding_id: hit.record_id };
        api("PUT", "/emails/" + email.email_id + "/regarding", body)
          .then(function () {
            notice("The email now regards " + hit.title + ".", "success");
            return refresh();
          })
          .catch(failed);
      });
      var row = el("li");
      row.appendChild(choose);
      results.appendChild(row);
    });
  }

  /* ---- the people -------------------------------------------------------- */

  function renderPeople(people) {
    var list = regions.people;
    clear(list);
    if (!people.length) {
      list.appendChild(el("li", "panel-person muted", "No addresses in this email."));
    }
    people.forEach(function (person) {
      list.appendChild(renderPerson(person));
    });
  }

  function renderPerson(person) {
    var row = el("li", "panel-person");
    row.setAttribute("data-address", person.address);
    var head = el("div", "panel-person-head");
    var avatar = el("span", "avatar", (person.name || person.address).charAt(0).toUpperCase());
    avatar.setAttribute("aria-hidden", "true");
    head.appendChild(avatar);
    var who = el("div", "panel-person-who");
    who.appendChild(el("span", "panel-person-name", person.name || person.address));
    who.appendChild(el("span", "panel-person-address muted", person.address));
    head.appendChild(who);
    var roles = el("span", "panel-roles muted");
    roles.textContent = person.roles
      .map(function (role) {
        return ROLE_LABELS[role] || role;
      })
      .join(" · ");
    head.appendChild(roles);
    row.appendChild(head);

    if (person.resolution === "unresolved") {
      var offer = el("div", "panel-person-offer");
      offer.appendChild(el("p", "muted", "Not in the CRM"));
      var actions = el("div", "panel-actions");
      ["contact", "lead"].forEach(function (kind) {
        var add = button("Add as " + kind, kind === "contact" ? "button-primary" : "", function () {
          busy(add, true);
          var body = { address: person.address, display_name: person.name || "", as: kind };
          api("POST", "/addresses/resolve", body)
            .then(function (made) {
              notice((made.name || person.address) + " is now a " + kind + ".", "success");
              return refresh();
            })
            .catch(function (error) {
              busy(add, false);
              failed(error);
            });
        });
        actions.appendChild(add);
      });
      offer.appendChild(actions);
      row.appendChild(offer);
      return row;
    }
    var records = el("ul", "panel-records");
    person.records.forEach(function (match) {
      var entry = el("li", "panel-record");
      entry.appendChild(badge(TYPE_LABELS[match.record_type] || match.record_type, match.colleague ? "neutral" : "info"));
      entry.appendChild(recordLink(match.record_type, match.id, match.name));
      if (match.account) {
        entry.appendChild(el("span", "muted", " at "));
        entry.appendChild(recordLink(match.account.record_type, match.account.id, match.account.name));
      }
      records.appendChild(entry);
    });
    row.appendChild(records);
    return row;
  }

  /* ---- connecting and disconnecting -------------------------------------- */

  function disconnected(message) {
    forgetToken();
    show("connect");
    notice(message, "warning");
  }

  function tokenName() {
    if (outlook) {
      var diagnostics = window.Office.context.diagnostics || {};
      return ("Outlook " + (diagnostics.platform || "add-in")).slice(0, 200);
    }
    return "Side panel in a browser";
  }

  function exchange(code) {
    notice("Connecting…", "info");
    return api("POST", "/panel/tokens", { code: code, name: tokenName() }, true).then(
      function (issued) {
        keepToken(issued.token);
        if (popup && !popup.closed) {
          popup.close();
        }
        popup = null;
        regions.connect.querySelector("form").reset();
        notice("Connected to crmsync.", "success");
        return refresh();
      },
      function (error) {
        if (error instanceof ApiError && error.status === 401) {
          notice("That code is unknown, used or expired. Ask for a new one.", "error");
          return;
        }
        failed(error);
      }
    );
  }

  function openDialog() {
    var url = new URL(connectUrl, window.location.href).href;
    if (outlook) {
      window.Office.context.ui.displayDialogAsync(
        url,
        { height: 60, width: 30, promptBeforeOpen: false },
        function (result) {
          if (result.status !== window.Office.AsyncResultStatus.Succeeded) {
            notice("The sign-in window could not open. Open " + url + " yourself and type its code here.", "error");
            return;
          }
          dialog = result.value;
          dialog.addEventHandler(window.Office.EventType.DialogMessageReceived, function (arg) {
            dialog.close();
            dialog = null;
            exchange(String(arg.message || ""));
          });
        }
      );
      return;
    }
    popup = window.open(url, "crmsync-connect", "popup,width=460,height=640");
    if (!popup) {
      notice("The sign-in window was blocked. Open " + url + " yourself and type its code here.", "error");
    }
  }

  window.addEventListener("message", function (event) {
    // Only our own pages may hand over a code, and only the window this panel opened.
    if (event.origin !== window.location.origin || (popup && event.source !== popup)) {
      return;
    }
    var data = event.data;
    if (data && data.type === CODE_MESSAGE && typeof data.code === "string") {
      exchange(data.code);
    }
  });

  document.getElementById("connect-open").addEventListener("click", openDialog);

  document.getElementById("connect-code-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var code = document.getElementById("connect-code").value.trim();
    if (code) {
      exchange(code);
    }
  });

  document.getElementById("panel-disconnect").addEventListener("click", function () {
    var done = function () {
      disconnected("Disconnected. This panel no longer acts for you.");
    };
    api("POST", "/panel/disconnect").then(done, done);
  });

  /* ---- start ------------------------------------------------------------- */

  function start() {
    item = outlook ? officeItem() : queryItem();
    show(token() ? "loading" : "connect");
    return refresh();
  }

  if (outlook) {
    window.Office.onReady(function () {
      var mailbox = window.Office.context.mailbox;
      // ?host=outlook opened in a plain browser: Office.js is there, but no mailbox.
      outlook = Boolean(mailbox);
      start();
      if (mailbox && mailbox.addHandlerAsync) {
        // A pinned pane stays open while the person moves to another email.
        mailbox.addHandlerAsync(window.Office.EventType.ItemChanged, function () {
          notice("");
          start();
        });
      }
    });
  } else {
    start();
  }
})();
