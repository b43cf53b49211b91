//! The dashboard: every panel, live, from one snapshot and one stream.

use crate::api::get_snapshot;
use crate::header::TopBar;
use crate::live::LiveStore;
use crate::panels::alerts::{AlertToasts, AlertsPanel};
use crate::panels::api::ApiPanel;
use crate::panels::controls::ControlsPanel;
use crate::panels::database::DatabasePanel;
use crate::panels::deployments::DeploymentsPanel;
use crate::panels::errors::ErrorLogPanel;
use crate::panels::health::HealthPanel;
use crate::panels::security::{SecurityPanel, Toasts};
use leptos::prelude::*;

/// The dashboard: critical metrics on top, then one slot per panel of the product.
#[component]
pub fn Dashboard() -> impl IntoView {
    let live = LiveStore::provide();
    // Blocking, so the first HTML already carries current values; the browser hydrates from the same data.
    let initial = Resource::new_blocking(|| (), |_| get_snapshot());
    #[cfg(feature = "hydrate")]
    crate::live::connect(live);

    view! {
        <TopBar picker=true />
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
