//! The file source's changes counted as the watch events the API would have sent for them, so that
//! `holdfast_controller_watch_events_total` reads the same with `--from-dir` as in a cluster: the first read of the
//! directory is a list of every kind (`init`, an `init_apply` per object, `init_done`), and each later change an
//! `apply` per object added or changed and a `delete` per object gone.

use super::manifest::Kind;
use crate::metrics::{SourceMetrics, WatchEvent};
use std::collections::BTreeMap;

/// Objects applied to and removed from the index by one pass over the files, by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub applied: BTreeMap<Kind, u64>,
    pub removed: BTreeMap<Kind, u64>,
}

impl Tally {
    pub fn apply(&mut self, kind: Kind) {
        *self.applied.entry(kind).or_default() += 1;
    }

    pub fn remove(&mut self, kind: Kind) {
        *self.removed.entry(kind).or_default() += 1;
    }

    /// Whether the index was changed.
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty() && self.removed.is_empty()
    }

    /// Counts the pass: as a list of every kind when it was the first complete read, else as applies and deletes.
    pub fn count(&self, first: bool, metrics: &SourceMetrics) {
        let add = |kind: Kind, event, n: u64| {
            if n > 0 {
                metrics.count_n(kind.name(), event, n);
            }
        };
        for kind in Kind::ALL {
            let applied = self.applied.get(&kind).copied().unwrap_or(0);
            if first {
                metrics.count(kind.name(), WatchEvent::init);
                add(kind, WatchEvent::init_apply, applied);
                metrics.count(kind.name(), WatchEvent::init_done);
            } else {
                add(kind, WatchEvent::apply, applied);
                add(kind, WatchEvent::delete, self.removed.get(&kind).copied().unwrap_or(0));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::WatchLabels;

    fn counts(metrics: &SourceMetrics, kind: &'static str) -> [u64; 5] {
        use WatchEvent::*;
        [init, init_apply, init_done, apply, delete]
            .map(|event| metrics.watch_events.get(&WatchLabels { kind, event }).map_or(0, |c| c.get()))
    }

    #[test]
    fn the_first_read_is_a_list_of_every_kind_and_later_changes_apply_and_delete_what_changed() {
        let metrics = SourceMetrics::default();
        let mut first = Tally::default();
        first.apply(Kind::Class);
        first.apply(Kind::Slice);
        first.apply(Kind::Slice);
        first.count(true, &metrics);
        assert_eq!(counts(&metrics, "EndpointSlice"), [1, 2, 1, 0, 0]);
        assert_eq!(counts(&metrics, "IngressClass"), [1, 1, 1, 0, 0]);
        assert_eq!(counts(&metrics, "UploadPolicy"), [1, 0, 1, 0, 0], "a kind with no file is listed empty");

        let mut second = Tally::default();
        second.apply(Kind::Slice);
        second.apply(Kind::Slice);
        second.remove(Kind::Slice);
        second.count(false, &metrics);
        assert_eq!(counts(&metrics, "EndpointSlice"), [1, 2, 1, 2, 1]);
        assert_eq!(counts(&metrics, "IngressClass"), [1, 1, 1, 0, 0]);

        Tally::default().count(false, &metrics);
        assert_eq!(counts(&metrics, "EndpointSlice"), [1, 2, 1, 2, 1], "nothing changed, nothing counted");
    }
}
