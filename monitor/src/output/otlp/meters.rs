//! The conventions' MCP server metrics over OTLP: `mcp.server.operation.duration` and
//! `mcp.server.session.duration`, histograms in seconds with the conventions' buckets.
//! Attributes are the low-cardinality ones only (no session id, no URI); tool and
//! method names are the bounded labels the Prometheus metrics use.

use opentelemetry::{
    KeyValue,
    metrics::{Histogram, MeterProvider as _},
};
use opentelemetry_sdk::metrics::SdkMeterProvider;

/// The bucket boundaries the MCP conventions give for both histograms (seconds).
pub const BUCKETS: &[f64] = &[
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

#[derive(Clone)]
pub struct Meters {
    pub operation: Histogram<f64>,
    pub session: Histogram<f64>,
}

impl Meters {
    pub fn new(provider: &SdkMeterProvider) -> Self {
        let meter = provider.meter_with_scope(super::span::scope());
        Self {
            operation: meter
                .f64_histogram("mcp.server.operation.duration")
                .with_unit("s")
                .with_description("MCP request or notification duration as observed on the receiver from the time it was received until the result or ack is sent.")
                .with_boundaries(BUCKETS.to_vec())
                .build(),
            session: meter
                .f64_histogram("mcp.server.session.duration")
                .with_unit("s")
                .with_description("The duration of the MCP session as observed on the MCP server.")
                .with_boundaries(BUCKETS.to_vec())
                .build(),
        }
    }
}

/// Attributes of an operation's duration.
pub struct OperationAttributes<'a> {
    /// Bounded: a known method name or `other`.
    pub method: &'a str,
    /// Bounded per server (`__other__` past the cap).
    pub tool: Option<&'a str>,
    pub prompt: Option<&'a str>,
    pub transport: &'static str,
    pub protocol_version: Option<&'a str>,
    pub error_type: Option<&'a str>,
}

impl OperationAttributes<'_> {
    pub fn key_values(&self) -> Vec<KeyValue> {
        let mut a = vec![
            KeyValue::new("mcp.method.name", self.method.to_string()),
            KeyValue::new("network.transport", self.transport),
        ];
        if let Some(t) = self.tool {
            a.push(KeyValue::new("gen_ai.tool.name", t.to_string()));
            a.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
        }
        if let Some(p) = self.prompt {
            a.push(KeyValue::new("gen_ai.prompt.name", p.to_string()));
        }
        if let Some(v) = self.protocol_version {
            a.push(KeyValue::new("mcp.protocol.version", v.to_string()));
        }
        if let Some(e) = self.error_type {
            a.push(KeyValue::new("error.type", e.to_string()));
        }
        if self.transport == "tcp" {
            a.push(KeyValue::new("network.protocol.name", "http"));
        }
        a
    }
}
