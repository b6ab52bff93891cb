//! Which Ingresses are ours. Follows the Ingress API's order: `spec.ingressClassName` decides when set (even when it
//! names another controller's class); only without it is the legacy `kubernetes.io/ingress.class` annotation read;
//! only without both does the default IngressClass claim the Ingress.

use crate::index::{Index, IngressModel, ObjectKey};
use std::collections::BTreeMap;

/// Our Ingresses, oldest first (the order in which conflicting routes are claimed).
pub fn owned_ingresses<'a>(index: &'a Index, controller: &str) -> Vec<(&'a ObjectKey, &'a IngressModel)> {
    let ours: BTreeMap<&str, bool> = index
        .classes
        .iter()
        .filter(|(_, class)| class.controller == controller)
        .map(|(key, class)| (key.name.as_str(), class.is_default))
        .collect();
    let mut owned: Vec<_> = index.ingresses.iter().filter(|(_, ingress)| is_ours(ingress, &ours)).collect();
    owned.sort_by(|(ka, a), (kb, b)| (&a.age, ka).cmp(&(&b.age, kb)));
    owned
}

fn is_ours(ingress: &IngressModel, ours: &BTreeMap<&str, bool>) -> bool {
    match (&ingress.class_name, &ingress.legacy_class) {
        (Some(name), _) => ours.contains_key(name.as_str()),
        (None, Some(legacy)) => ours.contains_key(legacy.as_str()),
        (None, None) => ours.values().any(|is_default| *is_default),
    }
}
