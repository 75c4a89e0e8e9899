//! What leaves the daemon: the JSON event stream, the Prometheus metrics, and spans
//! and metrics over OTLP.
pub mod events;
pub mod metrics;
pub mod otlp;
pub mod redact;
pub mod render;
pub mod text;
