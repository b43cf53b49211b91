//! Grouping and repeating as Alertmanager does it, so a storm sends one message rather than a hundred.
//!
//! Alerts with the same values of the `group_by` labels form a group. A new group waits `group_wait` before
//! its first message (collecting the rest of the storm); after that it is looked at every `group_interval`,
//! and a message goes out only when something changed (an alert started firing, or one that was notified
//! resolved). When nothing changed, the firing alerts are repeated after `repeat_interval`, unless every one
//! of them is acknowledged. Silenced alerts are left out of messages. Time is passed in (Unix ms), so the
//! logic is tested without a clock.

use super::notice::{Notice, NoticeStatus};
use std::collections::{BTreeMap, BTreeSet};

/// The timing of groups, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    pub group_by: Vec<String>,
    pub group_wait_ms: i64,
    pub group_interval_ms: i64,
    pub repeat_interval_ms: i64,
}

/// One message's worth: a group's alerts at a flush.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Like Alertmanager's: `{}:{alertname="cpu-high"}`.
    pub group_key: String,
    pub group_labels: BTreeMap<String, String>,
    /// Firing alerts first, then resolved ones.
    pub alerts: Vec<Notice>,
}

impl Batch {
    pub fn firing(&self) -> usize {
        self.alerts
            .iter()
            .filter(|a| a.status == NoticeStatus::Firing)
            .count()
    }

    pub fn status(&self) -> NoticeStatus {
        if self.firing() > 0 {
            NoticeStatus::Firing
        } else {
            NoticeStatus::Resolved
        }
    }
}

struct Group {
    labels: BTreeMap<String, String>,
    /// By fingerprint.
    alerts: BTreeMap<String, Notice>,
    next_flush_ms: i64,
    /// Fingerprints of the alerts the last message carried as firing.
    notified: BTreeSet<String>,
    last_sent_ms: Option<i64>,
}

/// Every group.
pub struct Groups {
    timing: Timing,
    groups: BTreeMap<String, Group>,
}

impl Groups {
    pub fn new(timing: Timing) -> Self {
        Groups {
            timing,
            groups: BTreeMap::new(),
        }
    }

    fn key_of(&self, notice: &Notice) -> (String, BTreeMap<String, String>) {
        let labels: BTreeMap<String, String> = self
            .timing
            .group_by
            .iter()
            .filter_map(|l| notice.labels.get(l).map(|v| (l.clone(), v.clone())))
            .collect();
        let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        (format!("{{}}:{{{}}}", inner.join(", ")), labels)
    }

    /// Takes in a new or changed alert. A resolved alert its group does not hold was never notified: it is
    /// dropped.
    pub fn add(&mut self, notice: Notice, now_ms: i64) {
        let (key, labels) = self.key_of(&notice);
        let wait = self.timing.group_wait_ms;
        match self.groups.get_mut(&key) {
            Some(group) => {
                if notice.status == NoticeStatus::Resolved
                    && !group.alerts.contains_key(&notice.fingerprint)
                {
                    return;
                }
                group.alerts.insert(notice.fingerprint.clone(), notice);
            }
            None if notice.status == NoticeStatus::Resolved => {}
            None => {
                self.groups.insert(
                    key,
                    Group {
                        labels,
                        alerts: BTreeMap::from([(notice.fingerprint.clone(), notice)]),
                        next_flush_ms: now_ms + wait,
                        notified: BTreeSet::new(),
                        last_sent_ms: None,
                    },
                );
            }
        }
    }

    /// Takes in an alert that was firing before a restart as already notified: its resolve message will go
    /// out, its firing message is not sent again until `repeat_interval`.
    pub fn seed(&mut self, notice: Notice, now_ms: i64) {
        let (key, _) = self.key_of(&notice);
        let fingerprint = notice.fingerprint.clone();
        self.add(notice, now_ms);
        if let Some(group) = self.groups.get_mut(&key) {
            group.notified.insert(fingerprint);
            group.last_sent_ms = Some(now_ms);
            group.next_flush_ms = now_ms + self.timing.group_interval_ms;
        }
    }

    /// When the next group is due, if any group exists.
    pub fn next_due(&self) -> Option<i64> {
        self.groups.values().map(|g| g.next_flush_ms).min()
    }

    /// The messages due at `now_ms`, one per group that has something to say.
    pub fn flush(&mut self, now_ms: i64) -> Vec<Batch> {
        let mut batches = Vec::new();
        let timing = self.timing.clone();
        self.groups.retain(|key, group| {
            if group.next_flush_ms > now_ms {
                return true;
            }
            let shown = |n: &&Notice| !n.silenced_at(now_ms);
            let firing: Vec<&Notice> = group
                .alerts
                .values()
                .filter(shown)
                .filter(|n| n.status == NoticeStatus::Firing)
                .collect();
            // A receiver that was told an alert fires is told it resolved, silenced or not: otherwise it
            // would show it firing for good.
            let resolved: Vec<&Notice> = group
                .alerts
                .values()
                .filter(|n| {
                    n.status == NoticeStatus::Resolved && group.notified.contains(&n.fingerprint)
                })
                .collect();
            // What receivers believe fires after this flush: what it sends, and what they were told before
            // and is only silenced now.
            let firing_now: BTreeSet<String> = group
                .alerts
                .values()
                .filter(|n| n.status == NoticeStatus::Firing && !n.one_off)
                .filter(|n| !n.silenced_at(now_ms) || group.notified.contains(&n.fingerprint))
                .map(|n| n.fingerprint.clone())
                .collect();
            let changed = firing
                .iter()
                .any(|n| !group.notified.contains(&n.fingerprint))
                || !resolved.is_empty();
            let repeat = group
                .last_sent_ms
                .is_some_and(|t| now_ms - t >= timing.repeat_interval_ms)
                && firing.iter().any(|n| !n.acknowledged && !n.one_off);
            let send = (changed || repeat) && !(firing.is_empty() && resolved.is_empty());
            if send {
                batches.push(Batch {
                    group_key: key.clone(),
                    group_labels: group.labels.clone(),
                    alerts: firing
                        .iter()
                        .chain(resolved.iter())
                        .map(|n| (*n).clone())
                        .collect(),
                });
                group.last_sent_ms = Some(now_ms);
            }
            group.notified = firing_now;
            // Resolved alerts have been told (or never needed telling); one-off alerts are told once.
            group
                .alerts
                .retain(|_, n| n.status == NoticeStatus::Firing && !n.one_off);
            group.next_flush_ms = now_ms + timing.group_interval_ms;
            // A group that just sent stays for one interval even when empty, so that a stream of one-off
            // alerts (failed sign-ins) is still one message per group_interval.
            !group.alerts.is_empty() || send
        });
        batches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing {
            group_by: vec!["alertname".into()],
            group_wait_ms: 1_000,
            group_interval_ms: 5_000,
            repeat_interval_ms: 60_000,
        }
    }

    fn notice(rule: &str, subject: &str, status: NoticeStatus) -> Notice {
        let labels = BTreeMap::from([
            ("alertname".to_string(), rule.to_string()),
            ("host".to_string(), subject.to_string()),
        ]);
        Notice {
            fingerprint: super::super::notice::fingerprint(&labels),
            status,
            labels,
            annotations: BTreeMap::new(),
            severity: shared::Severity::Warning,
            starts_ms: 0,
            ends_ms: None,
            value: Some(1.0),
            silenced_until_ms: None,
            acknowledged: false,
            one_off: false,
            path: "/alerts".into(),
        }
    }

    fn sizes(batches: &[Batch]) -> Vec<(usize, usize)> {
        batches
            .iter()
            .map(|b| (b.firing(), b.alerts.len() - b.firing()))
            .collect()
    }

    #[test]
    fn a_storm_of_ten_is_one_message_and_its_end_another() {
        let mut g = Groups::new(timing());
        for i in 0..10 {
            g.add(
                notice("cpu", &format!("web-{i}"), NoticeStatus::Firing),
                i * 50,
            );
        }
        assert!(
            g.flush(999).is_empty(),
            "group_wait holds the first message"
        );
        assert_eq!(sizes(&g.flush(1_000)), [(10, 0)]);
        // Nothing changed: nothing sent at the next interval.
        assert!(g.flush(6_000).is_empty());
        for i in 0..10 {
            g.add(
                notice("cpu", &format!("web-{i}"), NoticeStatus::Resolved),
                7_000,
            );
        }
        assert!(g.flush(7_500).is_empty(), "group_interval holds it");
        assert_eq!(sizes(&g.flush(11_000)), [(0, 10)]);
        assert!(g.flush(16_000).is_empty());
        assert_eq!(
            g.next_due(),
            None,
            "an empty group is gone after an interval"
        );
    }

    #[test]
    fn a_newcomer_waits_for_the_interval_and_the_message_holds_every_firing_alert() {
        let mut g = Groups::new(timing());
        g.add(notice("cpu", "a", NoticeStatus::Firing), 0);
        assert_eq!(sizes(&g.flush(1_000)), [(1, 0)]);
        g.add(notice("cpu", "b", NoticeStatus::Firing), 2_000);
        assert!(g.flush(2_000).is_empty());
        assert_eq!(sizes(&g.flush(6_000)), [(2, 0)]);
        // Another rule is another group, with its own wait.
        g.add(notice("disk", "a", NoticeStatus::Firing), 6_500);
        assert_eq!(g.next_due(), Some(7_500));
    }

    #[test]
    fn repeats_follow_repeat_interval_unless_acknowledged() {
        let mut g = Groups::new(timing());
        g.add(notice("cpu", "a", NoticeStatus::Firing), 0);
        assert_eq!(g.flush(1_000).len(), 1);
        assert!(g.flush(56_000).is_empty());
        assert_eq!(sizes(&g.flush(61_000)), [(1, 0)], "repeated");
        let mut acked = notice("cpu", "a", NoticeStatus::Firing);
        acked.acknowledged = true;
        g.add(acked, 62_000);
        assert!(g.flush(121_000).is_empty(), "acknowledged: not repeated");
    }

    #[test]
    fn silenced_alerts_are_left_out_and_unnotified_resolves_dropped() {
        let mut g = Groups::new(timing());
        let mut quiet = notice("cpu", "a", NoticeStatus::Firing);
        quiet.silenced_until_ms = Some(10_000);
        g.add(quiet, 0);
        g.add(notice("cpu", "b", NoticeStatus::Firing), 0);
        let sent = g.flush(1_000);
        assert_eq!(sizes(&sent), [(1, 0)]);
        assert_eq!(sent[0].alerts[0].labels["host"], "b");
        // `a` resolves while silenced: never told it fired, so not told it resolved.
        g.add(notice("cpu", "a", NoticeStatus::Resolved), 2_000);
        assert!(g.flush(6_000).is_empty());
        // A resolve for an alert never seen starts nothing.
        g.add(notice("mem", "x", NoticeStatus::Resolved), 7_000);
        assert_eq!(g.next_due(), Some(11_000));
    }

    #[test]
    fn one_off_alerts_are_told_once() {
        let mut g = Groups::new(timing());
        for who in ["eve", "mallory"] {
            let mut n = notice("security", who, NoticeStatus::Firing);
            n.one_off = true;
            g.add(n, 0);
        }
        assert_eq!(sizes(&g.flush(1_000)), [(2, 0)]);
        // A third arrives: it waits for the group's interval, not a new group_wait.
        let mut n = notice("security", "trudy", NoticeStatus::Firing);
        n.one_off = true;
        g.add(n, 1_200);
        assert!(g.flush(2_200).is_empty());
        assert_eq!(sizes(&g.flush(6_000)), [(1, 0)]);
        assert!(g.flush(11_000).is_empty());
        assert_eq!(g.next_due(), None);
    }

    #[test]
    fn an_alert_told_before_its_silence_is_told_when_it_resolves() {
        let mut g = Groups::new(timing());
        g.add(notice("cpu", "a", NoticeStatus::Firing), 0);
        assert_eq!(sizes(&g.flush(1_000)), [(1, 0)]);
        let mut quiet = notice("cpu", "a", NoticeStatus::Firing);
        quiet.silenced_until_ms = Some(100_000);
        g.add(quiet, 2_000);
        assert!(
            g.flush(6_000).is_empty(),
            "a silence is not a change to tell"
        );
        let mut gone = notice("cpu", "a", NoticeStatus::Resolved);
        gone.silenced_until_ms = Some(100_000);
        g.add(gone, 7_000);
        assert_eq!(sizes(&g.flush(11_000)), [(0, 1)]);
    }

    #[test]
    fn a_seeded_alert_is_not_told_again_but_its_resolve_is() {
        let mut g = Groups::new(timing());
        g.seed(notice("cpu", "a", NoticeStatus::Firing), 0);
        assert!(g.flush(5_000).is_empty());
        g.add(notice("cpu", "a", NoticeStatus::Resolved), 6_000);
        assert_eq!(sizes(&g.flush(10_000)), [(0, 1)]);
    }
}
