//! Mapping tests of the Kubernetes connector, on objects in the API's JSON shape.

use connectors_proto::v1::{ContainerImage, Label, Workload, entity::Body};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::{Phase, deployment_entity, digest_of, pod_entity};

fn workload(entity: &connectors_proto::v1::Entity) -> &Workload {
    match &entity.body {
        Some(Body::Workload(w)) => w,
        other => panic!("not a workload: {other:?}"),
    }
}

fn pod(value: serde_json::Value) -> Pod {
    serde_json::from_value(value).unwrap()
}

#[test]
fn a_deployment_maps_to_a_workload_with_its_template_images() {
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "api", "namespace": "payments", "resourceVersion": "41",
                     "uid": "5d4b1a2e-8f3c-4e6a-9b7d-0c1e2f3a4b5c",
                     "labels": {"tier": "backend", "app": "api"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}},
                 "template": {"spec": {
                     "initContainers": [{"name": "migrate", "image": "reg.example.com/api-migrate@sha256:abc"}],
                     "containers": [{"name": "api", "image": "reg.example.com/api:1.4.2"}]}}},
        "status": {"readyReplicas": 2, "conditions": [
            {"type": "Available", "status": "False"}, {"type": "Progressing", "status": "True"}]}
    }))
    .unwrap();
    let entity = deployment_entity("prod-eu", &deployment);
    assert_eq!(
        entity.urn,
        "urn:connectors:kubernetes:workload:prod-eu/payments/deployment/api"
    );
    assert_eq!(entity.native_id, "prod-eu/payments/deployment/api");
    assert_eq!(entity.display_name, "payments/api");
    assert_eq!(
        entity.labels,
        vec![
            Label {
                key: "app".into(),
                value: "api".into()
            },
            Label {
                key: "tier".into(),
                value: "backend".into()
            }
        ]
    );
    assert_eq!(
        workload(&entity),
        &Workload {
            workload_type: "Deployment".into(),
            cluster: "prod-eu".into(),
            namespace: "payments".into(),
            images: vec![
                ContainerImage {
                    container: "api".into(),
                    image: "reg.example.com/api:1.4.2".into(),
                    digest: String::new()
                },
                ContainerImage {
                    container: "migrate".into(),
                    image: "reg.example.com/api-migrate@sha256:abc".into(),
                    digest: "sha256:abc".into()
                },
            ],
            owner_urns: vec![],
            desired_replicas: 3,
            ready_replicas: 2,
            status: "Progressing".into(),
            attributes: vec![Label {
                key: "uid".into(),
                value: "5d4b1a2e-8f3c-4e6a-9b7d-0c1e2f3a4b5c".into()
            }],
        }
    );
}

#[test]
fn a_pod_links_to_its_deployment_through_the_replicaset_and_takes_digests_from_status() {
    let p = pod(json!({
        "metadata": {"name": "api-7d9c5b8f4-x2x9q", "namespace": "payments",
                     "labels": {"pod-template-hash": "7d9c5b8f4", "app": "api"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-7d9c5b8f4",
                                          "uid": "u", "controller": true}]},
        "spec": {"containers": [{"name": "api", "image": "reg.example.com/api:1.4.2"}]},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "api", "image": "reg.example.com/api:1.4.2",
                                          "imageID": "reg.example.com/api@sha256:0123", "ready": true,
                                          "restartCount": 0}]}
    }));
    let entity = pod_entity("prod-eu", &p);
    let w = workload(&entity);
    assert_eq!(
        entity.urn,
        "urn:connectors:kubernetes:workload:prod-eu/payments/pod/api-7d9c5b8f4-x2x9q"
    );
    assert_eq!(
        w.owner_urns,
        vec!["urn:connectors:kubernetes:workload:prod-eu/payments/deployment/api"]
    );
    assert_eq!(w.images[0].digest, "sha256:0123");
    assert_eq!(
        (w.desired_replicas, w.ready_replicas, w.status.as_str()),
        (1, 1, "Running")
    );
}

#[test]
fn a_pod_s_debug_containers_are_among_its_images() {
    // `kubectl debug` adds an ephemeral container to a running pod: its
    // image runs there too.
    let p = pod(json!({
        "metadata": {"name": "web-0", "namespace": "shop"},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}],
                 "ephemeralContainers": [{"name": "debugger-x7k2", "image": "busybox:1.36", "targetContainerName": "web"}]},
        "status": {"phase": "Running",
                   "containerStatuses": [{"name": "web", "image": "docker.io/library/nginx:1.27",
                                          "imageID": "docker.io/library/nginx@sha256:aa11", "ready": true, "restartCount": 0}],
                   "ephemeralContainerStatuses": [{"name": "debugger-x7k2", "image": "docker.io/library/busybox:1.36",
                                                   "imageID": "docker.io/library/busybox@sha256:bb22", "ready": false,
                                                   "restartCount": 0}]}
    }));
    let entity = pod_entity("prod-eu", &p);
    assert_eq!(
        workload(&entity).images,
        vec![
            ContainerImage {
                container: "web".into(),
                image: "nginx:1.27".into(),
                digest: "sha256:aa11".into(),
            },
            ContainerImage {
                container: "debugger-x7k2".into(),
                image: "busybox:1.36".into(),
                digest: "sha256:bb22".into(),
            },
        ]
    );
}

#[test]
fn pods_without_a_deployment_owner_have_no_owner_urns() {
    // A Job's pod, a bare pod, and a ReplicaSet whose name does not end in the hash.
    for owners in [
        json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "nightly", "uid": "u", "controller": true}]),
        json!([]),
        json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "standalone-rs", "uid": "u", "controller": true}]),
    ] {
        let p = pod(json!({
            "metadata": {"name": "x", "namespace": "ns", "labels": {"pod-template-hash": "abc"},
                         "ownerReferences": owners},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Pending"}
        }));
        let entity = pod_entity("c", &p);
        let w = workload(&entity);
        assert!(w.owner_urns.is_empty(), "{owners}");
        assert_eq!((w.ready_replicas, w.status.as_str()), (0, "Pending"));
    }
}

#[test]
fn digests_come_only_from_pinned_references() {
    assert_eq!(digest_of("docker.io/library/nginx@sha256:ff"), "sha256:ff");
    assert_eq!(digest_of("docker-pullable://nginx@sha256:ff"), "sha256:ff");
    assert_eq!(digest_of("nginx:1.27"), "");
    assert_eq!(digest_of(""), "");
}

#[test]
fn page_cursors_round_trip_and_refuse_garbage() {
    for phase in [
        Phase::Deployments(None),
        Phase::Deployments(Some("eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ".into())),
        Phase::Pods(None),
        Phase::Pods(Some("abc-_=".into())),
    ] {
        assert_eq!(Phase::parse(&phase.cursor()), Some(phase));
    }
    for bad in ["", "pods", "secrets:", "pods:a b", "pods:https://evil.example.com/x?y"] {
        assert_eq!(Phase::parse(bad), None, "{bad}");
    }
}

#[test]
fn a_deployment_created_again_under_its_name_keeps_its_urn_and_changes_its_hash() {
    let deployment = |uid: &str| -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "api", "namespace": "payments", "uid": uid},
            "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "api", "image": "api:1"}]}}}
        }))
        .unwrap()
    };
    let before = deployment_entity("prod-eu", &deployment("8b0c5a1e-0000-4000-8000-000000000001"));
    let after = deployment_entity("prod-eu", &deployment("8b0c5a1e-0000-4000-8000-000000000002"));
    assert_eq!(before.urn, after.urn);
    assert_ne!(crate::sync::content_hash(&before), crate::sync::content_hash(&after));
}
