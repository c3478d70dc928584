// The engine's Web Worker (src/app/worker.rs says why there is one). The page
// starts it as a module worker and posts one message: the URL of its own
// JavaScript glue and its compiled WebAssembly.Module. Instantiating that
// module here runs its `main`, which sees it is in a worker and listens for the
// page's messages from then on (src/app/in_worker.rs); it posts "Ready" first,
// and the page holds every other message until then. A glue or module that
// cannot start is reported in the page's own message format.
self.addEventListener(
  "message",
  async (event) => {
    const { glue, module } = event.data;
    try {
      const bindings = await import(glue);
      await bindings.default({ module_or_path: module });
    } catch (error) {
      self.postMessage([JSON.stringify({ Broken: String((error && error.message) || error) })]);
    }
  },
  { once: true },
);
