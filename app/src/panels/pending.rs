//! The honest empty state of a panel whose data source is not connected: no invented numbers.

use leptos::prelude::*;

#[component]
pub fn PendingPanel(id: &'static str, title: &'static str, what: &'static str) -> impl IntoView {
    let heading = format!("{id}-title");
    let labelled_by = heading.clone();
    view! {
        <section class="panel pending" data-testid=format!("panel-{id}") aria-labelledby=labelled_by>
            <div class="panel-head">
                <h2 id=heading>{title}</h2>
            </div>
            <p class="empty">
                <strong>"No source connected yet."</strong>
                " "
                {what}
            </p>
        </section>
    }
}
