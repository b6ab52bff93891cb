//! Checks on the generated CRD: the committed YAML is what the types generate, and the schema is structural, as a
//! real API server requires (every node typed, no `$ref`, no untyped `anyOf`/`oneOf`, no `null` among enum values).

use kube::CustomResourceExt;
use serde_json::Value;

#[test]
fn committed_crd_yaml_matches_the_types() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/uploadpolicy.yaml")).unwrap();
    let generated = holdfast_crds::crd_yaml().unwrap();
    assert!(
        committed == generated,
        "crds/uploadpolicy.yaml is stale: run `cargo run -p holdfast-crds --bin crdgen -- crds/uploadpolicy.yaml`"
    );
}

#[test]
fn crd_identity_matches_the_api() {
    let crd = serde_json::to_value(holdfast_crds::UploadPolicy::crd()).unwrap();
    assert_eq!(crd["metadata"]["name"], "uploadpolicies.holdfast.io");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["shortNames"], serde_json::json!(["upol"]));
    assert_eq!(crd["spec"]["versions"][0]["name"], "v1alpha1");
    assert_eq!(crd["spec"]["versions"][0]["subresources"]["status"], serde_json::json!({}));
    let columns: Vec<&str> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Mode", "Max Body", "Accepted", "Age"]);
}

#[test]
fn schema_is_structural() {
    let crd = serde_json::to_value(holdfast_crds::UploadPolicy::crd()).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let mut problems = Vec::new();
    check_node("openAPIV3Schema", schema, &mut problems);
    assert!(problems.is_empty(), "schema is not structural:\n{}", problems.join("\n"));
}

#[test]
fn every_spec_field_is_documented() {
    let crd = serde_json::to_value(holdfast_crds::UploadPolicy::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut undocumented = Vec::new();
    check_documented("spec", spec, &mut undocumented);
    assert!(undocumented.is_empty(), "fields without a description: {undocumented:?}");
}

#[test]
fn resumable_schema_lists_its_enums_and_checks_header_names() {
    let crd = serde_json::to_value(holdfast_crds::UploadPolicy::crd()).unwrap();
    let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let resumable = &spec["properties"]["resumable"]["properties"];
    assert_eq!(resumable["protocol"]["enum"], serde_json::json!(["Tus"]));
    assert_eq!(resumable["deliveryMethod"]["enum"], serde_json::json!(["POST", "PUT"]));
    let headers = &resumable["metadataHeaders"];
    assert_eq!((&headers["type"], &headers["additionalProperties"]["type"]), (&"object".into(), &"string".into()));
    assert!(headers["additionalProperties"]["pattern"].is_string(), "header names are not checked");
    for field in ["maxSize", "expiresAfter", "outcomeRetention", "answerWait"] {
        assert!(resumable[field]["pattern"].is_string(), "{field} has no pattern");
    }
}

fn check_node(at: &str, node: &Value, problems: &mut Vec<String>) {
    let Some(object) = node.as_object() else {
        problems.push(format!("{at}: not an object"));
        return;
    };
    let int_or_string = object.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = object.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if !object.get("type").is_some_and(Value::is_string) && !int_or_string && !preserve {
        problems.push(format!("{at}: no single type"));
    }
    for key in ["$ref", "definitions", "$defs"] {
        if object.contains_key(key) {
            problems.push(format!("{at}: has {key}"));
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        // Allowed by Kubernetes only as pure validation under an int-or-string node; never used in ours.
        if object.contains_key(key) && !int_or_string {
            problems.push(format!("{at}: {key} on a node that is not int-or-string"));
        }
    }
    for key in object.keys().filter(|k| k.starts_with("x-kubernetes-")) {
        let known = ["x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields", "x-kubernetes-list-type"];
        if !known.contains(&key.as_str()) {
            problems.push(format!("{at}: unexpected extension {key}"));
        }
    }
    if object.get("enum").and_then(Value::as_array).is_some_and(|values| values.iter().any(Value::is_null)) {
        problems.push(format!("{at}: null among enum values"));
    }
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            check_node(&format!("{at}.{name}"), child, problems);
        }
    }
    if let Some(items) = object.get("items") {
        check_node(&format!("{at}[]"), items, problems);
    }
    if let Some(additional) = object.get("additionalProperties").filter(|v| v.is_object()) {
        check_node(&format!("{at}{{}}"), additional, problems);
    }
}

fn check_documented(at: &str, node: &Value, undocumented: &mut Vec<String>) {
    if let Some(properties) = node["properties"].as_object() {
        for (name, child) in properties {
            let path = format!("{at}.{name}");
            if child["description"].as_str().is_none_or(str::is_empty) {
                undocumented.push(path.clone());
            }
            check_documented(&path, child, undocumented);
            check_documented(&format!("{path}[]"), &child["items"], undocumented);
        }
    }
}
