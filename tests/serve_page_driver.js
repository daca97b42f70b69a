// Runs the model pages' script (zoo/serving/static/zoo.js) under Node against a live `zoo serve`, with a
// small stand-in for the browser's DOM and canvas, clicks each form's buttons and reports what the page
// shows. Used by tests/test_serve.py where no browser is at hand; Node >= 18 (for fetch).
//
//   node tests/serve_page_driver.js http://127.0.0.1:PORT MODEL [MODEL...]
//
// Prints one JSON line per model: {model, task, actions: [{button, text, canvases, painted, links,
// errors}], console: {...}}.
"use strict";

class Canvas2D {
  constructor(canvas) { this.canvas = canvas; this.font = ""; this.fillStyle = ""; this.strokeStyle = ""; }
  paint() { this.canvas.painted += 1; }
  fillRect() { this.paint(); }
  fillText() { this.paint(); }
  fill() { this.paint(); }
  stroke() { this.paint(); }
  drawImage() { this.paint(); }
  measureText(text) { return { width: 6 * String(text).length }; }
  getImageData(x, y, w, h) { return { data: new Uint8ClampedArray(w * h * 4).fill(255) }; }
  beginPath() {} moveTo() {} lineTo() {} arc() {} save() {} restore() {} translate() {} rotate() {}
  setTransform() {}
}

class Element {
  constructor(tag) {
    this.tagName = tag.toUpperCase();
    this.children = [];
    this.attributes = {};
    this.listeners = {};
    this.ownText = "";
    this.className = "";
    this.value = "";
    this.disabled = false;
    this.painted = 0;
    this.files = [];
  }
  append(...items) {
    for (const item of items) this.children.push(typeof item === "string" ? new Text(item) : item);
    if (this.tagName === "SELECT" && !this.value && this.children.length) this.value = this.children[0].value;
  }
  replaceChildren(...items) { this.children = []; this.ownText = ""; this.append(...items); }
  setAttribute(key, value) {
    this.attributes[key] = String(value);
    if (["width", "height"].includes(key)) this[key] = Number(value);
    if (["value", "type", "min", "max", "step", "href", "download"].includes(key)) this[key] = String(value);
  }
  addEventListener(type, listener) { (this.listeners[type] = this.listeners[type] || []).push(listener); }
  get textContent() { return this.ownText + this.children.map((c) => c.textContent).join(""); }
  set textContent(value) { this.ownText = String(value); this.children = []; }
  getContext() { return new Canvas2D(this); }
  *walk() { yield this; for (const child of this.children) if (child instanceof Element) yield* child.walk(); }
  find(predicate) { return [...this.walk()].filter(predicate); }
}

class Text {
  constructor(text) { this.text = text; }
  get textContent() { return this.text; }
}

const realFetch = globalThis.fetch;

async function runPage(base, model) {
  const html = await (await realFetch(`${base}/models/${model}`)).text();
  const data = html.split('id="model-data">')[1].split("</script>")[0];
  const ids = { "model-data": Object.assign(new Element("script"), { ownText: data }) };
  for (const id of ["try", "console", "signatures"]) ids[id] = new Element("div");
  globalThis.document = {
    getElementById: (id) => ids[id] || null,
    createElement: (tag) => new Element(tag),
    addEventListener: () => {},
  };
  globalThis.location = { origin: base };
  globalThis.window = globalThis;
  globalThis.Image = class { set src(value) { this._src = value; } };
  const script = await (await realFetch(`${base}/static/zoo.js`)).text();
  // the page's relative URLs ("/v1/models/...") go to the server
  globalThis.fetch = (url, options) => realFetch(url.startsWith("/") ? base + url : url, options);
  new Function(script)();

  async function click(button) {
    for (const listener of button.listeners.click || []) await listener({});
  }
  function report(root, label) {
    const output = root.find((e) => e.className === "result")[0];
    const everything = output.find(() => true);
    return {
      button: label,
      text: output.textContent.slice(0, 2000),
      canvases: everything.filter((e) => e.tagName === "CANVAS").length,
      painted: everything.reduce((sum, e) => sum + e.painted, 0),
      links: everything.filter((e) => e.tagName === "A").map((e) => e.attributes.download || ""),
      errors: everything.filter((e) => e.className === "error").map((e) => e.textContent),
    };
  }

  const actions = [];
  const tryRoot = ids.try;
  for (const button of tryRoot.find((e) => e.tagName === "BUTTON" && e.listeners.click)) {
    await click(button);
    actions.push(report(tryRoot, button.textContent));
  }
  const send = ids.console.find((e) => e.tagName === "BUTTON")[0];
  await click(send);
  const consoleReport = report(ids.console, "Send");
  const parsed = JSON.parse(ids["model-data"].ownText);
  return { model, task: parsed.task, actions, console: consoleReport,
           signatures: ids.signatures.find((e) => e.tagName === "TR").length - 1 };
}

(async () => {
  const [base, ...models] = process.argv.slice(2);
  for (const model of models) {
    let result;
    try {
      result = await runPage(base, model);
    } catch (error) {
      result = { model, crashed: String(error && error.stack || error) };
    }
    process.stdout.write(JSON.stringify(result) + "\n");
  }
})();
