//! Notification settings: the campaign's `notify:` merged over its machine's, key by key.
//!
//! ```yaml
//! notify:
//!   webhook: https://hooks.slack.com/services/...   # JSON POST; Slack/Mattermost read `text`
//!   command: mail -s "flow" me@example.org          # sh -c, the event JSON on stdin
//!   events: [start, failure, gate, end]             # the default: all four
//!   failure_interval: 10m                           # at most one failure message per interval
//! ```
//!
//! The engine's notifier (`engine/src/notify.rs`) delivers; this module only says what.

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::merge::merge;
use crate::node::Node;
use crate::quantity::parse_duration;
use serde::Serialize;
use std::collections::HashSet;
use std::time::Duration;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Start,
    Failure,
    Gate,
    End,
}

impl EventKind {
    pub const ALL: [EventKind; 4] = [
        EventKind::Start,
        EventKind::Failure,
        EventKind::Gate,
        EventKind::End,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Start => "start",
            EventKind::Failure => "failure",
            EventKind::Gate => "gate",
            EventKind::End => "end",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The resolved `notify:` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifySettings {
    pub webhook: Option<String>,
    pub command: Option<String>,
    pub events: HashSet<EventKind>,
    /// At most one failure notification per this interval (later ones are counted and
    /// mentioned in the next message).
    pub failure_interval: Duration,
}

/// A failure notification at most this often, unless `failure_interval` says otherwise.
pub const DEFAULT_FAILURE_INTERVAL: Duration = Duration::from_secs(300);

/// The campaign's `notify:` over the machine's; `None` when neither names a webhook or a
/// command. The schema has checked the shapes; what it cannot check is a located error.
pub(crate) fn notify_settings(
    machine: Option<&Node>,
    campaign: Option<&Node>,
    diags: &mut Diagnostics,
) -> Option<NotifySettings> {
    let merged = match (machine, campaign) {
        (None, None) => return None,
        (Some(m), None) => m.clone(),
        (None, Some(c)) => c.clone(),
        (Some(m), Some(c)) => merge(m, c),
    };
    let text = |k: &str| {
        merged
            .get(k)
            .and_then(Node::as_str)
            .map(str::to_string)
            .filter(|s| !s.trim().is_empty())
    };
    let mut events = HashSet::new();
    match merged.get("events").and_then(Node::as_seq) {
        Some(list) => {
            for e in list.iter() {
                match e.as_str().and_then(EventKind::parse) {
                    Some(kind) => {
                        events.insert(kind);
                    }
                    None => diags.push(
                        Diagnostic::at(
                            &e.span,
                            "notify.events",
                            format!("unknown event `{}`", e.scalar_text().unwrap_or_default()),
                        )
                        .expected("start, failure, gate or end"),
                    ),
                }
            }
        }
        None => events.extend(EventKind::ALL),
    }
    let failure_interval = match merged.get("failure_interval") {
        None => DEFAULT_FAILURE_INTERVAL,
        Some(n) => match parse_duration(&n.scalar_text().unwrap_or_default()) {
            Ok(d) => d,
            Err(e) => {
                diags.push(
                    Diagnostic::at(&n.span, "notify.failure_interval", e)
                        .expected("a duration such as 10m"),
                );
                DEFAULT_FAILURE_INTERVAL
            }
        },
    };
    let settings = NotifySettings {
        webhook: text("webhook"),
        command: text("command"),
        events,
        failure_interval,
    };
    (settings.webhook.is_some() || settings.command.is_some()).then_some(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceFile;
    use crate::yaml_loader::parse;

    fn node(text: &str) -> Node {
        parse(&SourceFile::new("n.yaml", text)).unwrap()
    }

    #[test]
    fn settings_merge_campaign_over_machine() {
        let campaign = node("notify: {webhook: 'http://127.0.0.1:9/h', events: [end]}\n");
        let machine = node("notify: {command: cat, failure_interval: 2m}\n");
        let mut diags = Diagnostics::default();
        let s = notify_settings(machine.get("notify"), campaign.get("notify"), &mut diags).unwrap();
        assert!(diags.is_empty());
        assert_eq!(s.webhook.as_deref(), Some("http://127.0.0.1:9/h"));
        assert_eq!(s.command.as_deref(), Some("cat"));
        assert_eq!(s.events, [EventKind::End].into_iter().collect());
        assert_eq!(s.failure_interval, Duration::from_secs(120));
        assert!(notify_settings(None, None, &mut diags).is_none());
        let bad = node("notify: {command: x, failure_interval: soon}\n");
        notify_settings(None, bad.get("notify"), &mut diags);
        assert_eq!(diags.0[0].field, "notify.failure_interval");
        assert_eq!(diags.0[0].span.as_ref().map(|s| s.line), Some(1));
    }
}
