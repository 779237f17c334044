//! Registry, health and reflection.

use connectors_proto::v1::{ConnectorAvailability, EntityKind};
use futures::StreamExt;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::support::TestServer;

#[tokio::test]
async fn list_and_get_connectors() {
    use EntityKind::{Asset, Manifest, Pipeline, Repository, Sbom, Tag, Workload};

    let server = TestServer::start().await;
    let listed = server.client.list_connectors().await.unwrap();
    // (id, display name, kinds, supports_incremental, auth modes): the
    // descriptors in server/src/providers/*/mod.rs.
    let want = vec![
        (
            "aws",
            "AWS",
            vec![Asset, Tag],
            false,
            vec!["default_chain", "assume_role"],
        ),
        (
            "azure",
            "Azure",
            vec![Asset],
            false,
            vec!["client_secret", "workload_identity", "managed_identity", "azure_cli"],
        ),
        (
            "gcp",
            "Google Cloud",
            vec![Asset],
            false,
            vec!["application_default", "service_account", "external_account"],
        ),
        (
            "github",
            "GitHub",
            vec![Repository, Manifest, Sbom],
            true,
            vec!["pat", "github_app"],
        ),
        ("gitlab", "GitLab", vec![Repository, Pipeline], true, vec!["token"]),
        (
            "kubernetes",
            "Kubernetes",
            vec![Workload],
            false,
            vec!["kubeconfig", "in_cluster"],
        ),
        ("wiz", "Wiz", vec![Asset], false, vec!["client_credentials", "token"]),
    ];
    let got: Vec<_> = listed
        .iter()
        .map(|c| {
            (
                c.id.as_str(),
                c.display_name.as_str(),
                c.kinds
                    .iter()
                    .map(|k| EntityKind::try_from(*k).unwrap())
                    .collect::<Vec<_>>(),
                c.supports_incremental,
                c.auth_modes.iter().map(String::as_str).collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(got, want);
    for connector in &listed {
        let id = connector.id.as_str();
        let mut name = id.to_owned();
        name[..1].make_ascii_uppercase();
        assert_eq!(
            (
                connector.service.clone(),
                ConnectorAvailability::try_from(connector.availability).unwrap(),
                connector.version.as_str(),
                connector.auth_mode.as_str()
            ),
            (
                format!("connectors.{id}.v1.{name}ConnectorService"),
                ConnectorAvailability::Fixture,
                env!("CARGO_PKG_VERSION"),
                ""
            ),
        );
        assert_eq!(&server.client.get_connector(id).await.unwrap(), connector);
    }
    let status = server.client.get_connector("nope").await.expect_err("unknown id");
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn health_is_served_overall_and_per_connector_service() {
    let server = TestServer::start().await;
    let mut health = HealthClient::new(server.client.channel().clone());
    for service in [
        "",
        "connectors.v1.RegistryService",
        "connectors.gcp.v1.GcpConnectorService",
        "connectors.azure.v1.AzureConnectorService",
        "connectors.aws.v1.AwsConnectorService",
        "connectors.github.v1.GithubConnectorService",
        "connectors.gitlab.v1.GitlabConnectorService",
        "connectors.kubernetes.v1.KubernetesConnectorService",
        "connectors.wiz.v1.WizConnectorService",
    ] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "connectors.nope.v1.NopeService".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(unknown.code(), Code::NotFound);
    // Shutdown flips health to NOT_SERVING before the listener closes.
    let mut watch = health
        .watch(HealthCheckRequest { service: "".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status,
        ServingStatus::Serving as i32
    );
    server.server.shutdown();
    assert_eq!(
        watch.next().await.unwrap().unwrap().status,
        ServingStatus::NotServing as i32
    );
}

#[tokio::test]
async fn reflection_lists_every_service_in_v1_and_v1alpha() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient as V1;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest as V1Req;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse as V1Resp;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as V1a;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as V1aReq;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse as V1aResp;

    let server = TestServer::start().await;
    let expected = |reflection: &str| {
        vec![
            "connectors.aws.v1.AwsConnectorService".to_owned(),
            "connectors.azure.v1.AzureConnectorService".to_owned(),
            "connectors.gcp.v1.GcpConnectorService".to_owned(),
            "connectors.github.v1.GithubConnectorService".to_owned(),
            "connectors.gitlab.v1.GitlabConnectorService".to_owned(),
            "connectors.kubernetes.v1.KubernetesConnectorService".to_owned(),
            "connectors.v1.RegistryService".to_owned(),
            "connectors.wiz.v1.WizConnectorService".to_owned(),
            "grpc.health.v1.Health".to_owned(),
            reflection.to_owned(),
        ]
    };

    let mut v1 = V1::new(server.client.channel().clone());
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(V1Req::ListServices(String::new())),
    };
    let mut responses = v1
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let Some(V1Resp::ListServicesResponse(list)) = responses.next().await.unwrap().unwrap().message_response else {
        panic!("not a list response")
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(names, expected("grpc.reflection.v1.ServerReflection"));

    // A symbol lookup returns the file that defines it (what grpcurl describe uses).
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(V1Req::FileContainingSymbol("connectors.v1.SyncEvent".into())),
    };
    let mut responses = v1
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let Some(V1Resp::FileDescriptorResponse(files)) = responses.next().await.unwrap().unwrap().message_response else {
        panic!("not a file descriptor response")
    };
    assert!(!files.file_descriptor_proto.is_empty());

    let mut v1alpha = V1a::new(server.client.channel().clone());
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(V1aReq::ListServices(String::new())),
    };
    let mut responses = v1alpha
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let Some(V1aResp::ListServicesResponse(list)) = responses.next().await.unwrap().unwrap().message_response else {
        panic!("not a list response")
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(names, expected("grpc.reflection.v1alpha.ServerReflection"));
}
