//! What the app asks of the browser: downloads with progress, files a person
//! chose or dropped, files to save, a chart as a PNG, the project's place in
//! IndexedDB, the storage estimate and the offline copy.
//!
//! The glue that would take many lines of `web-sys` (streamed fetch, SVG to
//! PNG through a canvas, saving a blob) is a few lines of JavaScript below;
//! IndexedDB goes through `rexie`.

use js_sys::Uint8Array;
use rexie::{ObjectStore, Rexie, TransactionMode};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

#[wasm_bindgen(inline_js = r#"
export async function fetch_bytes(url, on_progress) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  const total = Number(response.headers.get('content-length')) || 0;
  const reader = response.body.getReader();
  const parts = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    received += value.length;
    on_progress(received, total);
  }
  const out = new Uint8Array(received);
  let at = 0;
  for (const part of parts) { out.set(part, at); at += part.length; }
  return out;
}

export function save_bytes(bytes, name, mime) {
  const url = URL.createObjectURL(new Blob([bytes], { type: mime }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

export async function save_svg_as_png(id, name, scale) {
  const svg = document.getElementById(id);
  if (!svg) throw new Error(`no chart ${id}`);
  const box = svg.viewBox.baseVal;
  const clone = svg.cloneNode(true);
  clone.setAttribute('xmlns', 'http://www.w3.org/2000/svg');
  clone.setAttribute('width', box.width * scale);
  clone.setAttribute('height', box.height * scale);
  const style = document.createElementNS('http://www.w3.org/2000/svg', 'style');
  style.textContent = 'text { font: 11px system-ui, sans-serif; fill: #222; }';
  clone.prepend(style);
  const url = URL.createObjectURL(new Blob([new XMLSerializer().serializeToString(clone)],
    { type: 'image/svg+xml' }));
  try {
    const image = new Image();
    image.src = url;
    await image.decode();
    const canvas = document.createElement('canvas');
    canvas.width = box.width * scale;
    canvas.height = box.height * scale;
    const context = canvas.getContext('2d');
    context.fillStyle = '#fff';
    context.fillRect(0, 0, canvas.width, canvas.height);
    context.drawImage(image, 0, 0);
    const png = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'));
    save_bytes(new Uint8Array(await png.arrayBuffer()), name, 'image/png');
  } finally {
    URL.revokeObjectURL(url);
  }
}

export async function storage_estimate() {
  if (!navigator.storage || !navigator.storage.estimate) return null;
  const { usage, quota } = await navigator.storage.estimate();
  return [usage ?? 0, quota ?? 0];
}

export function reload_page() {
  location.reload();
}

export async function offline_status() {
  return window.moseOffline ? await window.moseOffline : 'unavailable: the page did not register it';
}
"#)]
extern "C" {
    #[wasm_bindgen(catch)]
    async fn fetch_bytes(
        url: &str,
        on_progress: &Closure<dyn FnMut(f64, f64)>,
    ) -> Result<JsValue, JsValue>;
    fn save_bytes(bytes: &Uint8Array, name: &str, mime: &str);
    #[wasm_bindgen(catch)]
    async fn save_svg_as_png(id: &str, name: &str, scale: f64) -> Result<JsValue, JsValue>;
    async fn storage_estimate() -> JsValue;
    async fn offline_status() -> JsValue;
    fn reload_page();
}

/// What went wrong in the browser, in its own words.
pub fn describe(e: JsValue) -> String {
    e.as_string()
        .or_else(|| {
            e.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Downloads `url`, reporting bytes received and the total (0 when unknown).
///
/// # Errors
/// The browser's reason, e.g. a missing file or a lost connection.
pub async fn download(
    url: &str,
    on_progress: impl FnMut(f64, f64) + 'static,
) -> Result<Vec<u8>, String> {
    let progress = Closure::new(on_progress);
    let bytes = fetch_bytes(url, &progress).await.map_err(describe)?;
    Ok(Uint8Array::new(&bytes).to_vec())
}

/// Reloads the page (what was saved to storage is found again).
pub fn reload() {
    reload_page();
}

/// Hands `bytes` to the browser as a file download named `name`.
pub fn save_file(bytes: &[u8], name: &str, mime: &str) {
    save_bytes(&Uint8Array::from(bytes), name, mime);
}

/// Saves the `<svg id=...>` chart as a PNG, drawn at `scale` times its size.
///
/// # Errors
/// The browser's reason.
pub async fn save_chart_png(svg_id: &str, name: &str, scale: f64) -> Result<(), String> {
    save_svg_as_png(svg_id, name, scale)
        .await
        .map(|_| ())
        .map_err(describe)
}

/// Bytes this site stores and may store, when the browser tells.
pub async fn storage_use() -> Option<(f64, f64)> {
    let value = storage_estimate().await;
    let array = value.dyn_ref::<js_sys::Array>()?;
    Some((array.get(0).as_f64()?, array.get(1).as_f64()?))
}

/// `Ok` once the service worker holds an offline copy of the app, or why
/// there is none (index.html registers it and says `"ready"` or
/// `"unavailable: <why>"`).
pub async fn offline_copy() -> Result<(), String> {
    let status = offline_status().await.as_string().unwrap_or_default();
    match status.as_str() {
        "ready" => Ok(()),
        other => Err(other.trim_start_matches("unavailable: ").to_string()),
    }
}

/// The bytes of a file a person chose or dropped.
///
/// # Errors
/// The browser's reason (a file removed since it was chosen, say).
pub async fn read_file(file: &web_sys::File) -> Result<Vec<u8>, String> {
    let buffer = JsFuture::from(file.array_buffer())
        .await
        .map_err(describe)?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// The bytes of the page's WebAssembly memory: the most it has held so far
/// (wasm memory grows and never shrinks).
pub fn wasm_memory_bytes() -> f64 {
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .ok()
        .and_then(|m| m.buffer().dyn_into::<js_sys::ArrayBuffer>().ok())
        .map_or(0.0, |b| f64::from(b.byte_length()))
}

/// The files of a file input or a drop, as a list.
pub fn files_of(list: Option<web_sys::FileList>) -> Vec<web_sys::File> {
    let Some(list) = list else {
        return Vec::new();
    };
    (0..list.length()).filter_map(|i| list.get(i)).collect()
}

/// The app's IndexedDB database: one object store of named byte strings.
#[derive(Clone)]
pub struct Store {
    db: std::rc::Rc<Rexie>,
}

/// The object store's name.
const FILES: &str = "files";

impl Store {
    /// Opens (and on first use creates) the database.
    ///
    /// # Errors
    /// Why the browser refused (private mode without storage, say).
    pub async fn open(name: &str) -> Result<Self, String> {
        let db = Rexie::builder(name)
            .version(1)
            .add_object_store(ObjectStore::new(FILES))
            .build()
            .await
            .map_err(|e| format!("the browser's storage (IndexedDB) cannot be opened: {e:?}"))?;
        Ok(Self {
            db: std::rc::Rc::new(db),
        })
    }

    /// The bytes saved under `key`, if any.
    ///
    /// # Errors
    /// The storage's error.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        let tx = self
            .db
            .transaction(&[FILES], TransactionMode::ReadOnly)
            .map_err(storage)?;
        let value = tx
            .store(FILES)
            .map_err(storage)?
            .get(key.into())
            .await
            .map_err(storage)?;
        Ok(value
            .filter(|v| !v.is_undefined() && !v.is_null())
            .map(|v| Uint8Array::new(&v).to_vec()))
    }

    /// Saves `bytes` under `key`, replacing what was there.
    ///
    /// # Errors
    /// The storage's error (the quota is full, say).
    pub async fn put(&self, key: &str, bytes: &[u8]) -> Result<(), String> {
        let tx = self
            .db
            .transaction(&[FILES], TransactionMode::ReadWrite)
            .map_err(storage)?;
        let value: JsValue = Uint8Array::from(bytes).into();
        tx.store(FILES)
            .map_err(storage)?
            .put(&value, Some(&key.into()))
            .await
            .map_err(storage)?;
        tx.done().await.map_err(storage)?;
        Ok(())
    }

    /// Deletes what is saved under `key`.
    ///
    /// # Errors
    /// The storage's error.
    pub async fn delete(&self, key: &str) -> Result<(), String> {
        let tx = self
            .db
            .transaction(&[FILES], TransactionMode::ReadWrite)
            .map_err(storage)?;
        tx.store(FILES)
            .map_err(storage)?
            .delete(key.into())
            .await
            .map_err(storage)?;
        tx.done().await.map_err(storage)?;
        Ok(())
    }
}

fn storage(e: rexie::Error) -> String {
    format!(
        "the browser's storage failed ({e:?}); free some space or allow this site to store data"
    )
}
