//! The dashboard page and its panels, one module each.

pub(crate) mod alerts;
mod api;
mod controls;
mod database;
mod deployments;
mod errors;
mod health;
mod security;

use crate::api::get_snapshot;
use crate::header::TopBar;
use crate::live::LiveStore;
use alerts::{AlertToasts, AlertsPanel};
use api::ApiPanel;
use controls::ControlsPanel;
use database::DatabasePanel;
use deployments::DeploymentsPanel;
use errors::ErrorLogPanel;
use health::HealthPanel;
use leptos::prelude::*;
use security::{SecurityPanel, Toasts};

/// The dashboard: critical metrics on top, then one slot per panel of the product.
#[component]
pub fn Dashboard() -> impl IntoView {
    let live = LiveStore::provide();
    // Blocking, so the first HTML already carries current values; the browser hydrates from the same data.
    let initial = Resource::new_blocking(|| (), |_| get_snapshot());
    #[cfg(feature = "hydrate")]
    crate::live::connect(live);

    view! {
        <TopBar />
        <main class="grid">
            <Suspense fallback=|| {
                view! { <section class="panel wide"><p class="empty">"Loading…"</p></section> }
            }>
                {move || Suspend::new(async move {
                    match initial.await {
                        Ok(env) => {
                            live.apply(&env);
                            view! {
                                <HealthPanel />
                                <ErrorLogPanel />
                                <ApiPanel />
                                <DatabasePanel />
                                <AlertsPanel />
                                <SecurityPanel />
                                <DeploymentsPanel />
                                <ControlsPanel />
                                <Toasts />
                                <AlertToasts />
                            }
                                .into_any()
                        }
                        Err(e) => {
                            view! {
                                <section class="panel wide failed" role="alert">
                                    <h2>"Server health"</h2>
                                    <p>{e.to_string()}</p>
                                </section>
                            }
                                .into_any()
                        }
                    }
                })}
            </Suspense>
        </main>
    }
}
