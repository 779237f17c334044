use super::*;

#[test]
fn endpoints_are_parsed() {
    assert_eq!(
        endpoint_from("http://127.0.0.1:50051".into())
            .unwrap()
            .uri()
            .to_string(),
        "http://127.0.0.1:50051/"
    );
    assert_eq!(
        endpoint_from("localhost:9000".into()).unwrap().uri().to_string(),
        "http://localhost:9000/"
    );
    assert!(endpoint_from("unix:/run/connectors.sock".into()).is_ok());
}

#[test]
fn bad_endpoints_are_rejected() {
    for endpoint in ["https://example.com", "ftp://example.com", "http://", "http://a b"] {
        let err = endpoint_from(endpoint.into()).unwrap_err();
        assert!(matches!(err, Error::InvalidEndpoint { .. }), "{endpoint}: {err:?}");
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }
}

#[test]
fn api_key_is_sent_as_bearer_token() {
    let mut auth = AuthInterceptor::bearer("s3cret").unwrap();
    let request = auth.call(tonic::Request::new(())).unwrap();
    assert_eq!(request.metadata().get("authorization").unwrap(), "Bearer s3cret");
    assert!(!format!("{auth:?}").contains("s3cret"));

    let mut none = AuthInterceptor::default();
    let request = none.call(tonic::Request::new(())).unwrap();
    assert!(request.metadata().get("authorization").is_none());
}

#[test]
fn invalid_api_keys_are_rejected() {
    for key in ["", "line\nbreak", "two words", "caf\u{e9}"] {
        let err = AuthInterceptor::bearer(key).unwrap_err();
        assert!(matches!(err, Error::InvalidApiKey(_)), "{key:?}: {err:?}");
    }
}

#[test]
fn resumes_send_the_checkpoint_in_the_options() {
    let request = github::v1::SyncRequest {
        orgs: vec!["acme".into()],
        options: Some(v1::SyncOptions {
            mode: v1::SyncMode::Incremental as i32,
            checkpoint: b"old".to_vec(),
            kinds: vec![v1::EntityKind::Repository as i32],
            state_key: "nightly".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let resumed = with_options_checkpoint(request.options.clone(), b"new".to_vec());
    let mut expected = request.options;
    expected.as_mut().unwrap().checkpoint = b"new".to_vec();
    assert_eq!(resumed, expected);

    assert_eq!(with_options_checkpoint(None, Vec::new()), None);
    assert_eq!(with_options_checkpoint(None, b"t".to_vec()).unwrap().checkpoint, b"t");
}

#[tokio::test]
async fn lazy_client_builds_without_a_server() {
    let client = ConnectorsClient::connect_lazy("http://127.0.0.1:1")
        .unwrap()
        .with_api_key("k")
        .unwrap()
        .with_resume_policy(ResumePolicy::never());
    let err = client.list_connectors().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
}
