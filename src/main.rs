//! The browser app's entry point. Trunk builds this binary for wasm32 and
//! serves it with `index.html`; the components live in [`app`]. The same
//! module runs the engine's Web Worker in CPU mode (`app/worker.rs`).

#[cfg(target_arch = "wasm32")]
mod app;

// The linker's constructors (the `inventory` registrations of cubecl's IR,
// which burn pulls in). wasm-ld treats a module that never calls them itself as
// a "command", expected to be entered once, and wraps every export in a call to
// them: then every call from JavaScript into the module (each JavaScript value
// handed to it, each callback) ran all of them again. Calling them here, once,
// from `main` makes the module a library to the linker, and the exports plain.
#[cfg(target_arch = "wasm32")]
unsafe extern "C" {
    fn __wasm_call_ctors();
}

#[cfg(target_arch = "wasm32")]
fn main() {
    // SAFETY: the first thing the module runs (wasm-bindgen's start calls
    // `main` right after instantiation), and only once.
    unsafe { __wasm_call_ctors() };
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
