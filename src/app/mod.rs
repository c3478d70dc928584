//! The Leptos app: one page, a header and the panels, left to right as the
//! work flows (UX.md). Components render plain data; the computation runs in
//! the library and reports progress through signals.

use leptos::prelude::*;

mod device_check;

use device_check::DeviceCheck;

/// The whole page.
#[component]
pub fn App() -> impl IntoView {
    view! {
        <header class="masthead">
            <h1>"MoSE Lab"</h1>
            <p class="tagline">
                "Teach a small language model your own tasks, one after another, and watch it remember."
            </p>
            <p class="privacy" data-testid="privacy">
                "Everything runs on this device. Nothing you type or train leaves it."
            </p>
        </header>
        <main>
            <DeviceCheck/>
        </main>
    }
}
