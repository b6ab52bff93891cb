//! The file source's changes counted as the watch events the API would have sent for them, so that
//! `holdfast_controller_watch_events_total` reads the same with `--from-dir` as in a cluster: the first read of the
//! directory is a list of every kind (`init`, an `init_apply` per object, `init_done`), and each later change an
//! `apply` per object added or changed and a `delete` per object gone. (The index itself is reset to the files'
//! objects on every change; only the counting compares.)

use super::files::Objects;
use crate::index::{IndexKind, ObjectKey};
use crate::metrics::{SourceMetrics, WatchEvent};
use std::collections::BTreeMap;

/// Counts what changed from `previous` (`None`: nothing was read yet) to `now`.
pub fn count(previous: Option<&Objects>, now: &Objects, metrics: &SourceMetrics) {
    count_kind(previous.map(|p| p.classes.as_slice()), &now.classes, metrics);
    count_kind(previous.map(|p| p.ingresses.as_slice()), &now.ingresses, metrics);
    count_kind(previous.map(|p| p.services.as_slice()), &now.services, metrics);
    count_kind(previous.map(|p| p.slices.as_slice()), &now.slices, metrics);
    count_kind(previous.map(|p| p.secrets.as_slice()), &now.secrets, metrics);
    count_kind(previous.map(|p| p.policies.as_slice()), &now.policies, metrics);
}

fn count_kind<K: IndexKind + PartialEq>(previous: Option<&[K]>, now: &[K], metrics: &SourceMetrics) {
    let add = |event, n: usize| {
        if n > 0 {
            metrics.count_n(K::KIND, event, u64::try_from(n).unwrap_or(u64::MAX));
        }
    };
    let now = by_key(now);
    let Some(previous) = previous else {
        metrics.count(K::KIND, WatchEvent::init);
        add(WatchEvent::init_apply, now.len());
        metrics.count(K::KIND, WatchEvent::init_done);
        return;
    };
    let before = by_key(previous);
    add(WatchEvent::apply, now.iter().filter(|(key, object)| before.get(*key) != Some(*object)).count());
    add(WatchEvent::delete, before.keys().filter(|key| !now.contains_key(*key)).count());
}

/// Objects by key; of two with one key the later wins, as it does in the index. The file source has checked every
/// object's key already, so none is left out here.
fn by_key<K: IndexKind>(objects: &[K]) -> BTreeMap<ObjectKey, &K> {
    objects.iter().filter_map(|object| Some((object.key().ok()?, object))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::WatchLabels;
    use std::path::Path;

    const CLASS: &str =
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: holdfast}\nspec: {controller: x}\n";

    fn slice(name: &str, address: &str) -> String {
        format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: {name}, namespace: d}}\n\
             addressType: IPv4\nendpoints: [{{addresses: [{address}]}}]\n"
        )
    }

    fn objects(documents: &[String]) -> Objects {
        super::super::files::parse(Path::new("t.yaml"), documents.join("---\n").as_bytes()).unwrap()
    }

    fn counts(metrics: &SourceMetrics, kind: &'static str) -> [u64; 5] {
        use WatchEvent::*;
        [init, init_apply, init_done, apply, delete]
            .map(|event| metrics.watch_events.get(&WatchLabels { kind, event }).map_or(0, |c| c.get()))
    }

    #[test]
    fn the_first_read_is_a_list_of_every_kind_and_later_changes_apply_and_delete_what_changed() {
        let metrics = SourceMetrics::default();
        let first = objects(&[CLASS.into(), slice("a", "10.0.0.1"), slice("b", "10.0.0.2")]);
        count(None, &first, &metrics);
        assert_eq!(counts(&metrics, "EndpointSlice"), [1, 2, 1, 0, 0]);
        assert_eq!(counts(&metrics, "IngressClass"), [1, 1, 1, 0, 0]);
        assert_eq!(counts(&metrics, "UploadPolicy"), [1, 0, 1, 0, 0], "a kind with no file is listed empty");

        // "a" edited, "b" removed, "c" added; the class unchanged.
        let second = objects(&[CLASS.into(), slice("a", "10.0.0.9"), slice("c", "10.0.0.3")]);
        count(Some(&first), &second, &metrics);
        assert_eq!(counts(&metrics, "EndpointSlice"), [1, 2, 1, 2, 1]);
        assert_eq!(counts(&metrics, "IngressClass"), [1, 1, 1, 0, 0]);

        count(Some(&second), &second, &metrics);
        assert_eq!(counts(&metrics, "EndpointSlice"), [1, 2, 1, 2, 1], "nothing changed, nothing counted");
    }
}
