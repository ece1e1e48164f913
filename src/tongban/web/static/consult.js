/* tongban — the consultation chat, streamed.
 *
 * Progressive enhancement of /consult: without this script every form posts normally and the page
 * comes back with the answer. With it, a question is posted to /consult/stream and the answer is read
 * as Server-Sent Events (meta, delta…, done) into the page's aria-live region. The server streams only
 * the final answer, already checked against its sources.
 *
 * Text from the server is only ever set with textContent (never innerHTML). When anything goes wrong
 * before the answer starts, the form is posted the ordinary way instead.
 */
(function () {
  "use strict";

  var main = document.getElementById("consult-form");
  var live = document.getElementById("consult-live");
  if (!main || !live || !window.fetch || !window.TextDecoder || !window.FormData) {
    return;
  }
  var MAX_CHARS = 500;
  var HINTED = { no_support: true, not_covered: true };
  var REPHRASE = { ungrounded: true, instruction: true };
  var HANDOFF = { no_support: true, not_covered: true, ungrounded: true };
  var busy = false;

  /* While an answer streams, further questions wait; aria-disabled (not disabled) keeps the focus. */
  function setBusy(value) {
    busy = value;
    var button = main.querySelector("button[type=submit]");
    if (value) {
      button.setAttribute("aria-disabled", "true");
    } else {
      button.removeAttribute("aria-disabled");
    }
  }

  function label(name) {
    return main.getAttribute("data-label-" + name) || "";
  }

  function el(tag, text, attrs) {
    var node = document.createElement(tag);
    if (text) {
      node.textContent = text;
    }
    if (attrs) {
      Object.keys(attrs).forEach(function (key) {
        node.setAttribute(key, attrs[key]);
      });
    }
    return node;
  }

  function entryUrl(id) {
    return "/knowledge/" + encodeURIComponent(id).replace(/%2F/gi, "/").replace(/%3A/gi, ":");
  }

  function itemUrl(code) {
    return "/catalog/items/" + encodeURIComponent(code);
  }

  function safeLink(url) {
    if (typeof url !== "string") {
      return null;
    }
    if (/^https?:\/\//.test(url) || (url.charAt(0) === "/" && url.charAt(1) !== "/")) {
      return url;
    }
    return null;
  }

  function hidden(name, value) {
    return el("input", "", { type: "hidden", name: name, value: value || "" });
  }

  function field(name) {
    var input = main.elements.namedItem(name);
    return input ? input.value : "";
  }

  /* A heading as the server renders it: "You asked:" then the question. */
  function questionHeading(question) {
    var h2 = el("h2");
    h2.appendChild(el("span", label("asked"), { class: "muted" }));
    h2.appendChild(document.createTextNode(" " + question));
    return h2;
  }

  function renderSources(article, out) {
    if (!out.citations || !out.citations.length) {
      return;
    }
    article.appendChild(el("h3", label("sources")));
    article.appendChild(el("p", label("sources-note"), { class: "muted" }));
    var list = el("ol", "", { class: "results sources" });
    out.citations.forEach(function (c) {
      var li = el("li");
      var url = entryUrl(c.id);
      li.appendChild(el("a", c.title, { href: url, lang: "zh-Hans" }));
      li.appendChild(document.createTextNode(" "));
      var meta = el("span", "", { class: "muted" });
      meta.appendChild(document.createTextNode("(" + label("version").replace("{v}", String(c.version))));
      if (c.heading) {
        meta.appendChild(document.createTextNode(" · "));
        meta.appendChild(el("span", c.heading, { lang: "zh-Hans" }));
      }
      meta.appendChild(document.createTextNode(")"));
      li.appendChild(meta);
      li.appendChild(el("blockquote", c.quote, { cite: url, lang: "zh-Hans" }));
      list.appendChild(li);
    });
    article.appendChild(list);
  }

  function renderRefusal(article, out, nextQuestions) {
    var box = el("div", "", { class: "note" });
    box.appendChild(el("p", out.reason_text, { lang: out.language }));
    if (HINTED[out.reason] && nextQuestions.length) {
      box.appendChild(el("p", nextQuestions.shift()));
    } else if (REPHRASE[out.reason]) {
      box.appendChild(el("p", label("rephrase")));
    }
    if (HANDOFF[out.reason] && out.reason_text.indexOf("12345") < 0) {
      box.appendChild(el("p", label("hotline")));
    }
    var handoff = safeLink(out.handoff_url);
    if (handoff) {
      var p = el("p");
      p.appendChild(el("a", label("handoff"), { href: handoff }));
      box.appendChild(p);
    }
    article.appendChild(box);
  }

  function renderItems(article, out) {
    if (!out.service_items || !out.service_items.length) {
      return;
    }
    article.appendChild(el("h3", label(out.refused ? "items-refused" : "items")));
    var list = el("ul");
    out.service_items.forEach(function (item) {
      var li = el("li");
      li.appendChild(el("a", item.name, { href: itemUrl(item.code), lang: "zh-Hans" }));
      /* The situation-guidance page, for the items that have one (the server names it). */
      var guide = out.guides && Object.prototype.hasOwnProperty.call(out.guides, item.code) ?
        safeLink(out.guides[item.code]) : null;
      if (guide) {
        li.appendChild(document.createTextNode(" · "));
        li.appendChild(el("a", label("guide"), { href: guide }));
      }
      list.appendChild(li);
    });
    article.appendChild(list);
  }

  function renderNext(article, out, nextQuestions) {
    if (!nextQuestions.length) {
      return;
    }
    article.appendChild(el("h3", label("next")));
    var box = el("div", "", { class: "actions" });
    nextQuestions.forEach(function (q) {
      var form = el("form", "", { method: "post", action: main.getAttribute("action"), "data-consult": "" });
      form.appendChild(hidden("csrf_token", field("csrf_token")));
      form.appendChild(hidden("conversation_id", out.conversation_id));
      form.appendChild(hidden("language", field("language")));
      form.appendChild(hidden("domain", field("domain")));
      form.appendChild(hidden("question", q));
      form.appendChild(el("button", q, { type: "submit" }));
      box.appendChild(form);
    });
    article.appendChild(box);
  }

  function finish(article, out) {
    var nextQuestions = (out.next_questions || []).slice();
    if (out.refused) {
      renderRefusal(article, out, nextQuestions);
    } else {
      renderSources(article, out);
    }
    renderItems(article, out);
    renderNext(article, out, nextQuestions);
  }

  /* Split the buffered text into complete events; returns what is left over. */
  function parseEvents(buffer, onEvent) {
    var parts = buffer.replace(/\r\n/g, "\n").split("\n\n");
    var rest = parts.pop();
    parts.forEach(function (block) {
      var name = "message";
      var data = [];
      block.split("\n").forEach(function (line) {
        if (line.indexOf("event:") === 0) {
          name = line.slice(6).trim();
        } else if (line.indexOf("data:") === 0) {
          data.push(line.slice(5).replace(/^ /, ""));
        }
      });
      if (data.length) {
        onEvent(name, JSON.parse(data.join("\n")));
      }
    });
    return rest;
  }

  function setConversation(id) {
    var forms = document.querySelectorAll("form[data-consult]");
    Array.prototype.forEach.call(forms, function (form) {
      var input = form.elements.namedItem("conversation_id");
      if (input && (form === main || !input.value)) {
        input.value = id;
      }
    });
  }

  function ask(form) {
    var data = new FormData(form);
    var question = String(data.get("question") || "").trim();
    var article = el("article", "", { class: "group turn answer" });
    article.appendChild(questionHeading(question));
    var status = el("p", label("pending"), { class: "muted" });
    article.appendChild(status);
    var answer = null;
    var started = false;
    setBusy(true);
    live.appendChild(article);

    function fallBack() {
      article.remove();
      setBusy(false);
      HTMLFormElement.prototype.submit.call(form);
    }

    function onEvent(name, payload) {
      if (name === "meta") {
        started = true;
        status.remove();
        setConversation(payload.conversation_id);
        if (!payload.refused) {
          answer = el("p", "", { class: "prose", lang: payload.language });
          article.appendChild(answer);
        }
      } else if (name === "delta" && answer) {
        answer.appendChild(document.createTextNode(payload));
      } else if (name === "done") {
        finish(article, payload);
        if (form === main) {
          main.elements.namedItem("question").value = "";
        }
      }
    }

    fetch(main.getAttribute("data-stream"), {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { Accept: "text/event-stream" },
    })
      .then(function (response) {
        var type = response.headers.get("content-type") || "";
        if (!response.ok || type.indexOf("text/event-stream") !== 0 || !response.body) {
          fallBack();
          return null;
        }
        var reader = response.body.getReader();
        var decoder = new TextDecoder();
        var buffer = "";
        function pump() {
          return reader.read().then(function (chunk) {
            if (chunk.done) {
              parseEvents(buffer + decoder.decode() + "\n\n", onEvent);
              return null;
            }
            buffer = parseEvents(buffer + decoder.decode(chunk.value, { stream: true }), onEvent);
            return pump();
          });
        }
        return pump().then(function () {
          setBusy(false);
        });
      })
      .catch(function () {
        if (!started) {
          fallBack();
          return;
        }
        setBusy(false);
        article.appendChild(el("p", label("failed"), { class: "error" }));
      });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-consult")) {
      return;
    }
    var question = String(new FormData(form).get("question") || "").trim();
    if (!question || question.length > MAX_CHARS) {
      return; // the server answers with the page and its error message
    }
    event.preventDefault();
    if (busy) {
      return;
    }
    ask(form);
  });
})();
