//! The browser app's entry point. Trunk builds this binary for wasm32 and
//! serves it with `index.html`; the components live in [`app`]. The same
//! module runs the engine's Web Worker in CPU mode (`app/worker.rs`).

#[cfg(target_arch = "wasm32")]
mod app;

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    if app::in_worker() {
        app::serve_worker();
    } else {
        leptos::mount::mount_to_body(app::App);
    }
}

/// Natively this binary only points the way: the app runs in a browser.
#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "mose-lab: this is the browser app; build and serve it with `scripts/serve.sh`, then open the address it prints"
    );
    std::process::ExitCode::from(2)
}
