// featviz gallery: the layer page's search box. Finds units by a word in the table written at build time
// (search/LAYER.js sets window.featvizSearch[layer] = {words: {word: [[unit, score], ...]}, labels: {...},
// resolved: {word: {line, mark, exact, flat, ...}}}; on a classifier, resolved says what each word became).
// The browser has no text tower, so a word outside the table cannot be encoded: the page says so and offers
// the table's words that start with or contain what was typed.
(function () {
  "use strict";
  var SUGGESTIONS = 12;

  function normalize(text) {
    return text.trim().replace(/\s+/g, " ").toLowerCase();
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) {
      node.className = className;
    }
    if (text !== undefined) {
      node.textContent = text;
    }
    return node;
  }

  function lookup(table) {
    var found = Object.create(null);  // typing "constructor" finds no inherited property
    Object.keys(table).forEach(function (key) {
      found[normalize(key)] = key;
    });
    return found;
  }

  function unitLink(box, unit, score, kind) {
    var link = element("a", "search-hit");
    link.href = box.dataset.units + encodeURIComponent(String(unit)) + ".html";
    link.dataset.unit = String(unit);
    var picture = element("img", "thumb");
    picture.src = box.dataset.images + encodeURIComponent(String(unit)) + "/thumbnail.png";
    picture.alt = "unit " + unit;
    picture.width = 48;
    picture.height = 48;
    picture.loading = "lazy";
    picture.addEventListener("error", function () { picture.remove(); });
    link.appendChild(picture);
    link.appendChild(element("span", "search-unit", "unit " + unit));
    link.appendChild(element("span", "search-score", kind + " " + Number(score).toFixed(3)));
    return link;
  }

  function setup(box) {
    var tables = window.featvizSearch || {};
    var table = tables[box.dataset.layer];
    var input = box.querySelector("input");
    var results = box.querySelector(".search-results");
    var list = box.querySelector("datalist");
    if (!table || !input || !results) {
      if (results) {
        results.textContent = "The search table of this layer is missing; rebuild the gallery with words or labels.";
      }
      return;
    }
    var words = table.words || {};
    var labels = table.labels || {};
    var resolved = table.resolved || {};
    var wordKeys = lookup(words);
    var labelKeys = lookup(labels);
    var vocabulary = Object.keys(words).concat(Object.keys(labels).filter(function (key) {
      return !(normalize(key) in wordKeys);
    })).sort();
    if (list) {
      vocabulary.forEach(function (word) {
        var option = document.createElement("option");
        option.value = word;
        list.appendChild(option);
      });
    }

    function suggest(query) {
      var starts = [];
      var contains = [];
      vocabulary.forEach(function (word) {
        var key = normalize(word);
        if (key.indexOf(query) === 0) {
          starts.push(word);
        } else if (query.length > 1 && key.indexOf(query) > 0) {
          contains.push(word);
        }
      });
      return starts.concat(contains).slice(0, SUGGESTIONS);
    }

    function section(title, hits, kind) {
      var part = element("div", "search-group");
      part.appendChild(element("h3", null, title));
      var row = element("div", "search-hits");
      hits.forEach(function (pair) {
        row.appendChild(unitLink(box, pair[0], pair[1], kind));
      });
      part.appendChild(row);
      return part;
    }

    function resolution(word) {
      var entry = Object.prototype.hasOwnProperty.call(resolved, word) ? resolved[word] : null;
      if (!entry || typeof entry.line !== "string") {
        return null;
      }
      var kind = entry.exact ? " exact" : (entry.flat ? " flat" : "");
      var line = element("p", "search-resolved" + kind, entry.line);
      if (entry.mark) {
        line.appendChild(document.createTextNode(" "));
        line.appendChild(element("span", "mark", entry.mark));
      }
      return line;
    }

    function show() {
      var query = normalize(input.value);
      results.textContent = "";
      if (!query) {
        return;
      }
      var word = wordKeys[query];
      var label = labelKeys[query];
      var became = word !== undefined ? resolution(word) : null;
      if (became) {
        results.appendChild(became);
      }
      if (label !== undefined && labels[label].length) {
        results.appendChild(section("Units labelled \u201c" + label + "\u201d", labels[label], "label score"));
      }
      if (word !== undefined && words[word].length) {
        results.appendChild(section("Units \u201c" + word + "\u201d points to most (zero-shot)", words[word], "score"));
      } else if (word !== undefined) {
        results.appendChild(element("p", "search-missing", "\u201c" + word + "\u201d is in the word list, but its " +
          "text direction points away from every unit of this layer in the gallery (all scores are negative)."));
      }
      if (word !== undefined || label !== undefined) {
        return;
      }
      var note = element("p", "search-missing");
      note.textContent = "\u201c" + input.value.trim() + "\u201d is not in this gallery's word list (" +
        table.word_count + " words, chosen when the gallery was built). The page cannot look up other words: " +
        "a browser has no text tower to encode them.";
      results.appendChild(note);
      var close = suggest(query);
      if (close.length) {
        var offer = element("p", "search-suggestions", "Words in the list: ");
        close.forEach(function (candidate) {
          var button = element("button", "search-suggestion", candidate);
          button.type = "button";
          button.addEventListener("click", function () {
            input.value = candidate;
            show();
            input.focus();
          });
          offer.appendChild(button);
        });
        results.appendChild(offer);
      }
    }

    input.addEventListener("input", show);
    box.querySelector("form").addEventListener("submit", function (event) {
      event.preventDefault();
      show();
    });
    var hash = /^#search=(.*)$/.exec(window.location.hash);
    if (hash) {
      input.value = decodeURIComponent(hash[1]);
    }
    show();
  }

  function start() {
    Array.prototype.forEach.call(document.querySelectorAll(".unit-search"), setup);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
