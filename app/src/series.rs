//! What a chart is drawn from, apart from how it is drawn: the stored-history component and the chart
//! builders both use these, so they live in a small always-compiled module of their own rather than in either
//! (which would tie the two into an import circle).

use shared::Metric;

/// A deployment marker on a time axis: when it started, and its label (version and environment).
pub type Mark = (i64, String);

/// A live reading of the chart's metrics, as it arrived on the stream.
#[derive(Debug, Clone, PartialEq)]
pub struct LivePoint {
    pub t_ms: i64,
    pub values: Vec<(Metric, f64)>,
}
