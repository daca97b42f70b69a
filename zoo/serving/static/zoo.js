// The model page of `zoo serve`: a form for the model's task, the drawing of its answer, and an
// API console. Everything goes through the server's TensorFlow Serving API
// (POST /v1/models/NAME:predict); nothing is fetched from anywhere else.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("model-data").textContent);
  const predictUrl = "/v1/models/" + encodeURIComponent(data.name) + ":predict";

  // -- helpers ---------------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  // JSON.parse for TensorFlow Serving's JSON: bare NaN / Infinity / -Infinity (outside strings) become null.
  function parseLoose(text) {
    let out = "", inString = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (inString) {
        out += c;
        if (c === "\\") { out += text[++i]; } else if (c === '"') { inString = false; }
        continue;
      }
      if (c === '"') { inString = true; out += c; continue; }
      const rest = text.slice(i, i + 9);
      const token = rest.startsWith("NaN") ? "NaN" : rest.startsWith("Infinity") ? "Infinity"
        : rest.startsWith("-Infinity") ? "-Infinity" : null;
      if (token) { out += "null"; i += token.length - 1; continue; }
      out += c;
    }
    return JSON.parse(out);
  }

  async function postText(body) {
    const response = await fetch(predictUrl, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: body,
    });
    const text = await response.text();
    let answer;
    try {
      answer = parseLoose(text);
    } catch (error) {
      throw new Error("HTTP " + response.status + ": " + text.slice(0, 300));
    }
    if (!response.ok) throw new Error("HTTP " + response.status + ": " + (answer.error || text));
    return answer;
  }

  function predict(request) {
    return postText(JSON.stringify(request));
  }

  function has(signature) {
    return Object.prototype.hasOwnProperty.call(data.signatures, signature);
  }

  // The example request of a signature (its JSON text is in the page: it may hold NaN).
  const parsedExamples = {};
  function exampleRequest(signature) {
    if (!(signature in parsedExamples)) {
      const text = data.examples[signature];
      parsedExamples[signature] = text ? parseLoose(text) : null;
    }
    return parsedExamples[signature];
  }

  function example(signature, input) {
    const request = exampleRequest(signature);
    return request && request.inputs ? request.inputs[input] : undefined;
  }

  function bounds(signature, input, fallback) {
    const spec = has(signature) && data.signatures[signature].inputs[input];
    return spec && spec.bounds ? spec.bounds : fallback;
  }

  function numberField(label, value, low, high, step) {
    const input = el("input", { type: "number", value: String(value), step: String(step || 1) });
    if (low !== undefined) input.min = String(low);
    if (high !== undefined) input.max = String(high);
    return { label: el("label", {}, label + " ", input), input: input };
  }

  function textBox(lines, rows) {
    const box = el("textarea", { rows: String(rows || 5), spellcheck: "false" });
    box.value = lines.join("\n");
    return box;
  }

  function nonBlankLines(box) {
    return box.value.split("\n").map((s) => s.trim()).filter((s) => s.length > 0);
  }

  // A button that runs `work(output)`, showing errors in the output.
  function action(label, output, work) {
    const button = el("button", { type: "button", text: label });
    button.addEventListener("click", async () => {
      output.replaceChildren();
      button.disabled = true;
      try {
        await work(output);
      } catch (error) {
        output.append(el("div", { class: "error", text: String(error.message || error) }));
      } finally {
        button.disabled = false;
      }
    });
    return button;
  }

  function bar(fraction, negative) {
    const width = Math.max(1, Math.round(200 * Math.min(1, Math.max(0, fraction))));
    return el("span", { class: negative ? "bar negative" : "bar", style: "width:" + width + "px" });
  }

  function heat(value) {
    const v = Math.min(1, Math.max(0, value));
    return "rgb(" + Math.round(255 - 215 * v) + "," + Math.round(255 - 150 * v) + "," + Math.round(255 - 40 * v) + ")";
  }

  // A heat map of `value(i, j)` (0..1) with row and column labels.
  function matrixCanvas(rowLabels, colLabels, value) {
    const cell = 20;
    const probe = document.createElement("canvas").getContext("2d");
    probe.font = "12px sans-serif";
    const widest = (labels) => Math.max(10, ...labels.map((s) => probe.measureText(s).width));
    const left = widest(rowLabels) + 8;
    const top = widest(colLabels) + 8;
    const canvas = el("canvas", {
      width: String(left + colLabels.length * cell), height: String(top + rowLabels.length * cell),
    });
    const ctx = canvas.getContext("2d");
    ctx.font = "12px sans-serif";
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    rowLabels.forEach((label, i) => {
      colLabels.forEach((_, j) => {
        ctx.fillStyle = heat(value(i, j));
        ctx.fillRect(left + j * cell, top + i * cell, cell - 1, cell - 1);
      });
      ctx.fillStyle = "#222";
      ctx.textAlign = "right";
      ctx.fillText(label, left - 4, top + i * cell + 14);
    });
    colLabels.forEach((label, j) => {
      ctx.save();
      ctx.translate(left + j * cell + 14, top - 4);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "left";
      ctx.fillStyle = "#222";
      ctx.fillText(label, 0, 0);
      ctx.restore();
    });
    return canvas;
  }

  function toBase64(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary);
  }

  function numbersFromLines(text) {
    return text.split("\n").map((line) => line.trim()).filter((line) => line.length > 0)
      .map((line) => line.split(/[,;\s]+/).filter((c) => c.length > 0).map((c) => {
        const lowered = c.toLowerCase();
        return lowered === "nan" || lowered === "na" || lowered === "?" ? NaN : Number(c);
      }));
  }

  // JSON text of a nested list of numbers with NaN written as TensorFlow Serving reads it.
  function numbersJson(value) {
    if (Array.isArray(value)) return "[" + value.map(numbersJson).join(",") + "]";
    return Number.isNaN(value) ? "NaN" : String(value);
  }

  // -- one form per task -----------------------------------------------------------------------

  function sentiment(root) {
    const box = textBox((example("serving_default", "texts") || ["a gorgeous, witty film"]).concat(
      ["a tedious, overlong mess"]), 6);
    const output = el("div", { class: "result" });
    root.append(el("p", { text: "One text per line:" }), box, action("Classify", output, async (out) => {
      const texts = nonBlankLines(box);
      const answer = await predict({ instances: texts });
      const table = el("table", { class: "sentiment" });
      answer.predictions.forEach((p, i) => {
        table.append(el("tr", {}, el("td", { text: texts[i] }), el("td", {}, bar(p, p < 0.5)),
          el("td", { class: "probability", text: (p >= 0.5 ? "positive " : "negative ") + p.toFixed(3) })));
      });
      out.append(table);
    }), output);
  }

  function translation(root) {
    const texts = (example("serving_default", "texts") || ["Ich bin müde."]).filter((t) => t.trim());
    const box = textBox(texts, 4);
    const [low, high] = bounds("translate", "beam_width", [1, 16]);
    const beam = numberField("beam width", Math.min(4, high), low, high);
    const output = el("div", { class: "result" });
    root.append(el("p", { text: "German, one sentence per line:" }), box, beam.label,
      action("Translate", output, async (out) => {
        const lines = nonBlankLines(box);
        if (!has("translate")) {
          const answer = await predict({ instances: lines });
          answer.predictions.forEach((p, i) => out.append(el("p", {}, lines[i] + " → ", el("b", { text: p.translations }))));
          return;
        }
        const maxLength = Math.min(64, bounds("translate", "max_length", [1, 64])[1]);
        const answer = await predict({
          signature_name: "translate",
          inputs: { texts: lines, beam_width: Number(beam.input.value), max_length: maxLength },
        });
        const o = answer.outputs;
        lines.forEach((line, i) => {
          out.append(el("p", {}, line + " → ", el("b", { class: "translation", text: o.translations[i] })));
          const source = o.source_tokens[i].map((t, j) => [t, j]).filter(([t]) => t !== "");
          const target = o.target_tokens[i].map((t, k) => [t, k]).filter(([t]) => t !== "");
          if (source.length && target.length) {
            out.append(matrixCanvas(target.map(([t]) => t), source.map(([t]) => t),
              (r, c) => o.attention[i][target[r][1]][source[c][1]]));
          }
        });
      }), output);
  }

  function captioning(root) {
    const size = (data.extras.image_size || [64])[0];
    const canvas = el("canvas", { width: String(size), height: String(size), style: "width:192px;height:192px" });
    const ctx = canvas.getContext("2d");
    // A drawn smiley, so that the form works before anything is uploaded.
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, size, size);
    ctx.fillStyle = "#f7c52b"; ctx.beginPath(); ctx.arc(size / 2, size / 2, size * 0.42, 0, 2 * Math.PI); ctx.fill();
    ctx.fillStyle = "#5b3a12";
    ctx.beginPath(); ctx.arc(size * 0.36, size * 0.4, size * 0.05, 0, 2 * Math.PI); ctx.fill();
    ctx.beginPath(); ctx.arc(size * 0.64, size * 0.4, size * 0.05, 0, 2 * Math.PI); ctx.fill();
    ctx.lineWidth = size * 0.04; ctx.strokeStyle = "#5b3a12";
    ctx.beginPath(); ctx.arc(size / 2, size * 0.52, size * 0.2, 0.15 * Math.PI, 0.85 * Math.PI); ctx.stroke();

    function show(blob) {
      const image = new Image();
      image.onload = () => {
        ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, size, size);
        ctx.drawImage(image, 0, 0, size, size);
        URL.revokeObjectURL(image.src);
      };
      image.src = URL.createObjectURL(blob);
    }
    const file = el("input", { type: "file", accept: "image/*" });
    file.addEventListener("change", () => { if (file.files[0]) show(file.files[0]); });
    document.addEventListener("paste", (event) => {
      for (const item of event.clipboardData.items) {
        if (item.type.startsWith("image/")) show(item.getAsFile());
      }
    });
    const output = el("div", { class: "result" });
    root.append(el("p", { text: "Upload or paste an image (it is shown as the model sees it):" }), file,
      el("div", {}, canvas), action("Caption", output, async (out) => {
        const pixels = ctx.getImageData(0, 0, size, size).data;
        const image = [];
        for (let y = 0; y < size; y++) {
          const row = [];
          for (let x = 0; x < size; x++) {
            const i = 4 * (y * size + x);
            row.push([pixels[i], pixels[i + 1], pixels[i + 2]]);
          }
          image.push(row);
        }
        if (!has("caption")) {
          const answer = await predict({ instances: [image] });
          out.append(el("p", { class: "caption", text: answer.predictions[0].captions }));
          return;
        }
        const maxLength = Math.min(24, bounds("caption", "max_length", [1, 24])[1]);
        const answer = await predict({
          signature_name: "caption", inputs: { images: [image], beam_width: 3, max_length: maxLength },
        });
        const o = answer.outputs;
        out.append(el("p", {}, el("b", { class: "caption", text: o.captions[0] })));
        const words = el("div", { class: "words" });
        o.tokens[0].forEach((word, t) => {
          if (!word) return;
          const weights = o.attention[0][t];
          const grid = Math.round(Math.sqrt(weights.length));
          const top = Math.max(...weights) || 1;
          const view = el("canvas", { width: "128", height: "128" });
          const v = view.getContext("2d");
          v.imageSmoothingEnabled = false;
          v.drawImage(canvas, 0, 0, 128, 128);
          const step = 128 / grid;
          weights.forEach((w, k) => {
            v.fillStyle = "rgba(20,40,160," + (0.75 * (1 - w / top)).toFixed(3) + ")";
            v.fillRect((k % grid) * step, Math.floor(k / grid) * step, step, step);
          });
          words.append(el("figure", {}, view, el("figcaption", { text: word })));
        });
        out.append(el("p", { class: "small", text: "Where the model looks for each word (bright = attended):" }), words);
      }), output);
  }

  function midiFile(events) {
    const varLength = (n) => {
      const bytes = [n & 0x7f];
      while ((n >>= 7)) bytes.unshift((n & 0x7f) | 0x80);
      return bytes;
    };
    const track = [0x00, 0xff, 0x51, 0x03, 0x09, 0x27, 0xc0]; // tempo: 100 quarter notes a minute
    let delay = 0;
    for (const event of events) {
      const ticks = event.steps * 120; // 480 ticks a quarter note, a step is a sixteenth
      if (event.pitch < 0) { delay += ticks; continue; }
      track.push(...varLength(delay), 0x90, event.pitch, 80, ...varLength(ticks), 0x80, event.pitch, 0);
      delay = 0;
    }
    track.push(...varLength(delay), 0xff, 0x2f, 0x00);
    const length = track.length;
    const header = [0x4d, 0x54, 0x68, 0x64, 0, 0, 0, 6, 0, 0, 0, 1, 0x01, 0xe0,
      0x4d, 0x54, 0x72, 0x6b, (length >>> 24) & 255, (length >>> 16) & 255, (length >>> 8) & 255, length & 255];
    return new Uint8Array(header.concat(track));
  }

  function play(events) {
    const Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return;
    const audio = new Context();
    let time = audio.currentTime + 0.1;
    const step = 60 / 100 / 4;
    for (const event of events) {
      const seconds = event.steps * step;
      if (event.pitch >= 0) {
        const oscillator = audio.createOscillator();
        const gain = audio.createGain();
        oscillator.type = "triangle";
        oscillator.frequency.value = 440 * Math.pow(2, (event.pitch - 69) / 12);
        gain.gain.setValueAtTime(0.2, time);
        gain.gain.exponentialRampToValueAtTime(0.001, time + seconds * 0.95);
        oscillator.connect(gain).connect(audio.destination);
        oscillator.start(time);
        oscillator.stop(time + seconds);
      }
      time += seconds;
    }
  }

  function pianoRoll(events) {
    const notes = events.filter((e) => e.pitch >= 0).map((e) => e.pitch);
    const low = Math.min(...notes) - 1, high = Math.max(...notes) + 1;
    const total = events.reduce((sum, e) => sum + e.steps, 0);
    const dx = Math.max(2, Math.min(10, 960 / Math.max(1, total))), dy = 7;
    const canvas = el("canvas", { width: String(Math.ceil(total * dx) + 2), height: String((high - low + 1) * dy + 2),
      class: "piano-roll" });
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, canvas.width, canvas.height);
    for (let p = low; p <= high; p++) {
      if ([1, 3, 6, 8, 10].includes(p % 12)) {
        ctx.fillStyle = "#f1f2f5"; ctx.fillRect(0, (high - p) * dy, canvas.width, dy);
      }
    }
    let x = 0;
    for (const event of events) {
      if (event.pitch >= 0) {
        ctx.fillStyle = "#4a78d0";
        ctx.fillRect(x * dx + 1, (high - event.pitch) * dy + 1, event.steps * dx - 1, dy - 1);
      }
      x += event.steps;
    }
    return canvas;
  }

  function music(root) {
    const signature = has("generate") ? "generate" : "serving_default";
    const keys = data.extras.keys || ["C major", "A minor"];
    const key = el("select", {}, ...keys.map((k) => el("option", { value: k, text: k })));
    key.value = keys.includes("D major") ? "D major" : keys[0];
    const [, most] = bounds(signature, "num_events", [1, 256]);
    const length = numberField("events", Math.min(64, most), 1, most);
    const temperature = numberField("temperature", 1.0, 0, 5, 0.1);
    const seed = numberField("seed", Math.floor(Math.random() * 100000), 0, undefined);
    const output = el("div", { class: "result" });
    root.append(el("label", {}, "key ", key), length.label, temperature.label, seed.label, el("br"),
      action("Compose", output, async (out) => {
        const n = Number(length.input.value);
        const answer = await predict({
          signature_name: signature,
          inputs: { keys: [key.value], num_events: n, temperature: Number(temperature.input.value),
            seed: Number(seed.input.value), min_events: n },
        });
        const o = answer.outputs;
        const events = [];
        for (let j = 0; j < o.lengths[0]; j++) events.push({ pitch: o.pitches[0][j], steps: o.durations[0][j] });
        const midi = midiFile(events);
        const link = el("a", { href: URL.createObjectURL(new Blob([midi], { type: "audio/midi" })),
          download: data.name + "-" + key.value.replace(/\W+/g, "-") + ".mid", text: "download the MIDI file" });
        out.append(el("p", { text: events.length + " events in " + key.value }), pianoRoll(events), el("br"),
          el("button", { type: "button", text: "Play", onclick: () => play(events) }), " ", link);
      }), output);
  }

  function languageModel(root) {
    const prompt = textBox([(example("generate", "prompts") || [""])[0] || "the"], 3);
    const [, longest] = bounds("generate", "max_length", [1, 200]);
    const length = numberField("length", Math.min(60, longest), 1, longest);
    const temperature = numberField("temperature", 0.8, 0, 5, 0.1);
    const topK = numberField("top k", 0, 0, bounds("generate", "top_k", [0, 1000])[1]);
    const topP = numberField("top p", 0.95, 0, 1, 0.05);
    const seed = numberField("seed", Math.floor(Math.random() * 100000), 0, undefined);
    const output = el("div", { class: "result" });
    root.append(el("p", { text: "Prompt (or a text to score):" }), prompt, length.label, temperature.label,
      topK.label, topP.label, seed.label, el("br"),
      has("generate") ? action("Generate", output, async (out) => {
        const answer = await predict({
          signature_name: "generate",
          inputs: { prompts: [prompt.value], max_length: Number(length.input.value),
            temperature: Number(temperature.input.value), top_k: Number(topK.input.value),
            top_p: Number(topP.input.value), seed: Number(seed.input.value) },
        });
        out.append(el("pre", { class: "generated", text: answer.outputs[0] })); // one output: the texts
      }) : null,
      has("score") ? action("Score", output, async (out) => {
        const answer = await predict({ signature_name: "score", instances: [prompt.value] });
        const p = answer.predictions[0];
        out.append(el("p", { text: p.tokens + " tokens, perplexity " + p.perplexity.toFixed(2) + ", " +
          p.bits_per_token.toFixed(3) + " bits per token" }));
      }) : null, output);
  }

  function tagging(root) {
    const box = textBox(example("serving_default", "texts") || ["The old man the boats."], 4);
    const output = el("div", { class: "result" });
    root.append(el("p", { text: "One sentence per line:" }), box, action("Tag", output, async (out) => {
      const texts = nonBlankLines(box);
      const answer = await predict({ instances: texts });
      answer.predictions.forEach((p) => {
        const sets = Object.keys(p).filter((k) => k.endsWith("_tags"));
        const table = el("table", { class: "tags" });
        const n = p.lengths;
        table.append(el("tr", {}, el("th", { text: "" }), ...p.tokens.slice(0, n).map((t) => el("th", { text: t }))));
        for (const set of sets) {
          table.append(el("tr", {}, el("td", { text: set.replace(/_tags$/, "") }),
            ...p[set].slice(0, n).map((t) => el("td", { text: t }))));
        }
        out.append(table);
      });
    }), output);
  }

  function forecasting(root) {
    const given = example("serving_default", "history");
    const rows = given ? given[0] : [[1], [2], [3]];
    const box = textBox(rows.map((r) => r.map((v) => (v === null ? "NaN" : String(v))).join(", ")), 8);
    const columns = data.extras.columns;
    const target = data.extras.target_index || 0;
    const output = el("div", { class: "result" });
    root.append(el("p", { text: "History, one time step per line" + (columns ? " (" + columns.join(", ") + ")" : "") +
      "; NaN marks a missing value:" }), box, action("Forecast", output, async (out) => {
      const history = numbersFromLines(box.value);
      const answer = await postText('{"instances":[' + numbersJson(history) + "]}");
      const p = answer.predictions[0];
      const past = history.map((r) => r[target]).slice(-60);
      const all = past.concat(p.forecast, p.lower, p.upper).filter((v) => v !== null && !Number.isNaN(v));
      const low = Math.min(...all), high = Math.max(...all);
      const width = 640, height = 240, steps = past.length + p.forecast.length;
      const canvas = el("canvas", { width: String(width), height: String(height), class: "forecast" });
      const ctx = canvas.getContext("2d");
      const x = (i) => 10 + (i * (width - 20)) / Math.max(1, steps - 1);
      const y = (v) => height - 10 - ((v - low) * (height - 20)) / Math.max(1e-9, high - low);
      ctx.fillStyle = "rgba(74,120,208,0.2)";
      ctx.beginPath();
      p.upper.forEach((v, i) => (i ? ctx.lineTo(x(past.length + i), y(v)) : ctx.moveTo(x(past.length), y(v))));
      for (let i = p.lower.length - 1; i >= 0; i--) ctx.lineTo(x(past.length + i), y(p.lower[i]));
      ctx.fill();
      const line = (values, offset, color) => {
        ctx.strokeStyle = color; ctx.lineWidth = 2; ctx.beginPath();
        let started = false;
        values.forEach((v, i) => {
          if (v === null || Number.isNaN(v)) { started = false; return; }
          if (started) ctx.lineTo(x(offset + i), y(v)); else ctx.moveTo(x(offset + i), y(v));
          started = true;
        });
        ctx.stroke();
      };
      line(past, 0, "#333");
      line(p.forecast, past.length, "#4a78d0");
      const table = el("table", {}, el("tr", {}, el("th", { text: "step" }), el("th", { text: "forecast" }),
        el("th", { text: "lower 0.1" }), el("th", { text: "upper 0.9" })));
      p.forecast.forEach((v, i) => table.append(el("tr", {}, el("td", { text: "+" + (i + 1) }),
        el("td", { text: v.toFixed(3) }), el("td", { text: p.lower[i].toFixed(3) }), el("td", { text: p.upper[i].toFixed(3) }))));
      out.append(canvas, table);
    }), output);
  }

  function timeseriesClassification(root) {
    const series = example("serving_default", "series");
    const lengths = example("serving_default", "lengths");
    const rows = series ? series[0].slice(0, lengths ? lengths[0] : undefined) : [[0]];
    const box = textBox(rows.map((r) => r.join(", ")), 8);
    const names = data.extras.class_names;
    const output = el("div", { class: "result" });
    root.append(el("p", { text: "One time step per line, features separated by commas:" }), box,
      action("Classify", output, async (out) => {
        const history = numbersFromLines(box.value);
        const answer = await postText('{"instances":[{"series":' + numbersJson(history) + ',"lengths":' +
          history.length + "}]}");
        const p = answer.predictions[0];
        out.append(el("p", {}, "class ", el("b", { class: "class-name", text: String(p.class_names) })));
        const table = el("table", {});
        p.probabilities.forEach((q, i) => table.append(el("tr", {}, el("td", { text: names ? names[i] : String(i) }),
          el("td", {}, bar(q)), el("td", { text: q.toFixed(3) }))));
        out.append(table);
      }), output);
  }

  function speech(root) {
    const file = el("input", { type: "file", accept: ".wav,audio/wav" });
    const output = el("div", { class: "result" });
    const exampleWav = (example("transcribe_bytes", "wav_bytes") || [])[0];
    async function transcribe(out, b64) {
      const signature = has("transcribe_bytes") ? "transcribe_bytes" : null;
      if (!signature) throw new Error("this model has no transcribe_bytes signature; use the API console");
      const answer = await predict({ signature_name: signature, instances: [{ b64: b64 }] });
      const p = answer.predictions[0];
      const text = typeof p === "string" ? p : p.texts;
      out.append(el("p", {}, text ? el("b", { class: "transcript", text: text })
        : el("i", { text: "(no words recognised)" })));
    }
    root.append(el("p", { text: "A WAV file (mono or stereo, 16-bit PCM):" }), file,
      action("Transcribe", output, async (out) => {
        if (!file.files[0]) throw new Error("choose a WAV file first");
        await transcribe(out, toBase64(await file.files[0].arrayBuffer()));
      }),
      exampleWav ? action("Transcribe the example tone", output, (out) => transcribe(out, exampleWav.b64)) : null,
      output);
  }

  const FORMS = {
    sentiment: sentiment, translation: translation, captioning: captioning, music: music,
    "language-model": languageModel, tagging: tagging, forecasting: forecasting,
    "timeseries-classification": timeseriesClassification, speech: speech,
  };

  // -- the API console and the signature table ------------------------------------------------

  function apiConsole(root) {
    const names = Object.keys(data.signatures);
    const select = el("select", {}, ...names.map((n) => el("option", { value: n, text: n })));
    if (names.includes("serving_default")) select.value = "serving_default";
    const box = el("textarea", { rows: "8", spellcheck: "false", class: "request" });
    const curl = el("pre", { class: "small" });
    const fill = () => {
      const text = data.examples[select.value] || '{"inputs": {}}';
      try {
        box.value = text.length > 4000 ? text : JSON.stringify(JSON.parse(text), null, 1);
      } catch (error) { // NaN in the request: shown as it is sent
        box.value = text;
      }
      curl.textContent = "curl -d @request.json " + location.origin + predictUrl;
    };
    select.addEventListener("change", fill);
    fill();
    const output = el("div", { class: "result" });
    root.append(el("label", {}, "signature ", select), box, action("Send", output, async (out) => {
      const answer = await postText(box.value);
      const text = JSON.stringify(answer, null, 1);
      out.append(el("pre", { class: "response", text: text.length > 20000 ? text.slice(0, 20000) + "\n…" : text }));
    }), curl, output);
  }

  function signatureTable(root) {
    const table = el("table", {}, el("tr", {}, el("th", { text: "signature" }), el("th", { text: "inputs" }),
      el("th", { text: "outputs" }), el("th", { text: "batched" })));
    const describe = (specs) => Object.entries(specs).map(([name, s]) =>
      name + ": " + s.dtype + " [" + s.shape.join(", ") + "]" + (s.bounds ? " in " + s.bounds.join("..") : "")).join("\n");
    for (const [name, s] of Object.entries(data.signatures)) {
      table.append(el("tr", {}, el("td", { text: name }), el("td", {}, el("pre", { text: describe(s.inputs) })),
        el("td", {}, el("pre", { text: describe(s.outputs) })),
        el("td", { class: "small", text: (s.batched ? "yes: " : "no: ") + s.batching + "; at most " + s.max_rows + " rows a request" })));
    }
    root.append(table);
  }

  const form = FORMS[data.task];
  const tryRoot = document.getElementById("try");
  if (form) form(tryRoot);
  else tryRoot.append(el("p", { text: "No form for this task yet: use the API console below." }));
  apiConsole(document.getElementById("console"));
  signatureTable(document.getElementById("signatures"));
})();
