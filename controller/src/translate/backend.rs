//! Ingress backends to snapshot backends: the Service port by number or name, then the endpoints of the Service's
//! EndpointSlices on the matching slice port (slices name their ports after the Service port, which is how a named
//! `targetPort` resolves to a number per pod).

use super::report::Reason;
use crate::index::{Index, ObjectKey, PortRef, ServicePortModel, SliceModel};
use holdfast_snapshot::{Backend, Endpoint, ServicePort};
use std::collections::BTreeSet;
use std::net::IpAddr;

/// A backend as the snapshot needs it. `problem` is set when the route stays (with no endpoints, so the dataplane
/// answers 503) but the user should be told why it has none.
pub struct Resolution {
    pub name: String,
    pub backend: Backend,
    pub problem: Option<(Reason, String)>,
    /// The Service port as found (its number), or as referenced when it was not found.
    pub port: String,
    /// The Service port's `appProtocol`, when the port was found.
    pub app_protocol: Option<String>,
}

/// Resolves `service:port` in `namespace`. `Err` means the reference itself is unusable and the route is skipped.
pub fn resolve(index: &Index, namespace: &str, service: &str, port: &PortRef) -> Result<Resolution, (Reason, String)> {
    if matches!(port, PortRef::Missing) {
        return Err((Reason::ServicePortNotFound, format!("backend service {service} names no port")));
    }
    let key = ObjectKey::new(namespace, service);
    // The port as the Ingress writes it (a number or a name) when the Service or its port is missing: the dataplane
    // labels the route's metrics with it, and a missing backend's 503s are worth a label too. Once resolved, its
    // number, so that one Service port has one label however Ingresses name it.
    let identity = ServicePort { namespace: namespace.to_string(), name: service.to_string(), port: port.to_string() };
    let empty = |name: String, reason, message| Resolution {
        name,
        backend: Backend { service: Some(identity.clone()), ..Backend::default() },
        problem: Some((reason, message)),
        port: port.to_string(),
        app_protocol: None,
    };
    let Some(svc) = index.services.get(&key) else {
        let message = format!("Service {key} does not exist");
        return Ok(empty(format!("{key}:{port}"), Reason::ServiceNotFound, message));
    };
    if svc.external_name {
        let message = format!("Service {key} is of type ExternalName, which has no endpoints to route to");
        return Ok(empty(format!("{key}:{port}"), Reason::ServiceNotFound, message));
    }
    let Some(service_port) = find_port(&svc.ports, port) else {
        let message = format!("Service {key} has no port {port}");
        return Ok(empty(format!("{key}:{port}"), Reason::ServicePortNotFound, message));
    };
    let endpoints = endpoints(index, &key, &service_port.name);
    Ok(Resolution {
        name: format!("{key}:{}", service_port.port),
        backend: Backend {
            endpoints,
            service: Some(ServicePort { port: service_port.port.to_string(), ..identity }),
            ..Default::default()
        },
        problem: None,
        port: service_port.port.to_string(),
        app_protocol: service_port.app_protocol.clone(),
    })
}

pub fn find_port<'a>(ports: &'a [ServicePortModel], port: &PortRef) -> Option<&'a ServicePortModel> {
    ports.iter().find(|p| match port {
        PortRef::Number(n) => p.port == *n,
        PortRef::Name(name) => &p.name == name,
        PortRef::Missing => false,
    })
}

/// Endpoints of every slice of the Service, on the slice port named like the Service port, deduplicated (a pod can
/// briefly appear in two slices while they are rebalanced). The slices are found through the index's by-Service
/// map: scanning every slice for every backend cost ~25 million comparisons per translation at 5,000 Ingresses.
pub fn endpoints(index: &Index, service: &ObjectKey, port_name: &str) -> Vec<Endpoint> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (_, slice) in index.slices_of(service) {
        let Some(port) = slice_port(slice, port_name) else { continue };
        for endpoint in &slice.endpoints {
            // The API treats an endpoint's addresses as fungible and tells consumers to use the first.
            let Some(address) = endpoint.addresses.first().filter(|a| a.parse::<IpAddr>().is_ok()) else { continue };
            if seen.insert((address.clone(), port)) {
                out.push(Endpoint {
                    address: address.clone(),
                    port,
                    ready: endpoint.ready,
                    serving: endpoint.serving,
                    terminating: endpoint.terminating,
                });
            }
        }
    }
    out
}

fn slice_port(slice: &SliceModel, port_name: &str) -> Option<u16> {
    if slice.address_type == "FQDN" {
        return None;
    }
    let port = slice.ports.iter().find(|p| p.name == port_name)?.port?;
    u16::try_from(port).ok().filter(|p| *p != 0)
}
