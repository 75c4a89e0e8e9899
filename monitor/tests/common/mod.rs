//! What the replay tests share: a writer to give the pipeline's events to and read them
//! back from, and the metrics as the endpoint shows them.
use std::{
    io::Write,
    sync::{Arc, Mutex},
};

use monitor::pipeline::Pipeline;
use serde_json::Value;

/// A writer the test reads back.
#[derive(Clone, Default)]
pub struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    /// The events written so far, one a line.
    pub fn events(&self) -> Vec<Value> {
        lines(&self.0.lock().unwrap())
    }
}

impl Write for Buffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// JSON lines, empty ones skipped.
pub fn lines(bytes: &[u8]) -> Vec<Value> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

/// The pipeline's metrics in the text exposition format, as `/metrics` serves them.
pub fn metrics_text(pipeline: &Pipeline) -> String {
    use prometheus::Encoder as _;
    let mut text = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&pipeline.metrics.registry.gather(), &mut text)
        .unwrap();
    String::from_utf8(text).unwrap()
}
