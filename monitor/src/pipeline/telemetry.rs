//! The pipeline's side of OTLP: each completed request as a span and a duration,
//! each ended session as a duration. Nothing here when `--otlp-endpoint` is not given.

use super::Pipeline;
use crate::{
    mcp::session::{Completed, Session},
    output::{
        otlp::{
            Otlp,
            meters::OperationAttributes,
            protocol_label,
            span::{self, Operation},
        },
        redact::redact_text,
        render::{CallEvent, truncate_str},
    },
    policy::{UNREGISTERED, verdict::Verdict},
    servers::Server,
    transport::SessionKey,
};

/// The span of `c`, with nothing redacted to add yet.
fn operation<'a>(
    c: &'a Completed,
    key: &'a SessionKey,
    session: &'a Session,
    server: &'a Server,
    entry: &'a str,
) -> Operation<'a> {
    Operation {
        c,
        key,
        session,
        server: entry,
        server_pid: server.pid,
        server_exe: &server.exe,
        target: None,
        error: None,
        verdict: None,
        arguments: None,
    }
}

impl Pipeline {
    /// A reported call (`tools/call`, `resources/read`, `prompts/get`): its span carries
    /// what its event does, redacted the same way (`fields`).
    pub(super) fn call_telemetry(
        &self,
        server: &Server,
        (key, session): (&SessionKey, &Session),
        c: &Completed,
        entry: &str,
        fields: &CallEvent,
        verdict: Option<&Verdict>,
    ) {
        let Some(otlp) = &self.otlp else {
            return;
        };
        let op = Operation {
            target: fields.target(),
            error: fields.error(),
            verdict,
            arguments: otlp.arguments.then(|| fields.arguments_text()).flatten(),
            ..operation(c, key, session, server, entry)
        };
        self.export(otlp, entry, &op);
    }

    /// Any other request (initialize, tools/list, ping...): a span without a verdict.
    pub(super) fn operation_telemetry(&self, server: &Server, key: &SessionKey, c: &Completed) {
        let Some(otlp) = &self.otlp else {
            return;
        };
        let Some(session) = server.sessions.get(key) else {
            return;
        };
        let policy = self.policy();
        let entry = policy
            .server_index(server.rule.as_deref())
            .map_or(UNREGISTERED, |i| policy.servers[i].name.as_str());
        let error = c
            .error
            .as_deref()
            .map(|e| truncate_str(&redact_text(e).0, self.max_field_bytes));
        let op = Operation {
            error: error.as_deref(),
            ..operation(c, key, session, server, entry)
        };
        self.export(otlp, entry, &op);
    }

    fn export(&self, otlp: &Otlp, entry: &str, op: &Operation) {
        let data = span::span_data(op, self.events.boot_epoch_ns(), otlp.ids());
        otlp.send(data);
        let c = op.c;
        let target = op.target.map(|t| self.metrics.bounded(entry, "tool", t));
        let error_type = span::error_type(c);
        let attributes = OperationAttributes {
            method: crate::mcp::methods::label(&c.method),
            tool: target.as_deref().filter(|_| c.method == "tools/call"),
            prompt: target.as_deref().filter(|_| c.method == "prompts/get"),
            transport: span::network_transport(op.key),
            protocol_version: protocol_label(op.session.protocol_version.as_deref()),
            error_type: error_type.as_deref(),
        };
        let seconds = c.end_ts_ns.saturating_sub(c.start_ts_ns) as f64 / 1e9;
        otlp.record_operation(seconds, &attributes);
    }

    /// A `monitor_status` event `otlp_dropped` when spans were dropped since the last
    /// one: totals by reason (the metric `mcp_monitor_otlp_spans_dropped_total` too).
    pub fn report_otlp_drops(&mut self) {
        let Some(drops) = self.otlp.as_mut().and_then(Otlp::drops_to_report) else {
            return;
        };
        let dropped: serde_json::Map<String, serde_json::Value> =
            drops.iter().map(|(r, n)| (r.to_string(), (*n).into())).collect();
        let ts = self.events.now();
        self.events.emit(
            "monitor_status",
            ts,
            serde_json::json!({"status": "otlp_dropped", "spans_dropped": dropped}),
        );
    }

    /// A session ended: its duration, from its first message to its end.
    pub(super) fn session_telemetry(
        &self,
        key: &SessionKey,
        start_ts_ns: u64,
        end_ts_ns: u64,
        protocol_version: Option<&str>,
    ) {
        let Some(otlp) = &self.otlp else {
            return;
        };
        let seconds = end_ts_ns.saturating_sub(start_ts_ns) as f64 / 1e9;
        otlp.record_session(
            seconds,
            span::network_transport(key),
            protocol_label(protocol_version),
        );
    }
}
