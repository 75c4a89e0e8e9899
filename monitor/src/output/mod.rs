//! What leaves the daemon: the JSON event stream and the Prometheus metrics.
pub mod events;
pub mod metrics;
pub mod redact;
pub mod render;
pub mod text;
