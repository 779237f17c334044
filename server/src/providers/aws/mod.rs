//! The AWS connector: ECR repositories and images, ECS clusters, services and
//! task definitions, EKS clusters, Lambda functions and the tags of the
//! Resource Groups Tagging API, per account, region and service.
//!
//! Every (account, region, service) is a scope, so one that fails is a
//! FAILED scope_status and the rest completes. AWS has no change feed for
//! these listings: INCREMENTAL syncs refetch them and the engine diffs each
//! scope against its saved state (an unchanged estate gives no events, a
//! deleted function exactly one deletion).

pub mod http;

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use connectors_proto::v1::{CloudAsset, ContainerImage, Entity, EntityKind, Label, Tag, entity::Body};

use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction, RetryClassifierPriority};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use self::http::SharedUpstreamHttp;
use crate::sync::{Availability, Connector, Descriptor, Scope, ScopeContext, ScopeError, SyncError, UpsertMeta, urn};

/// The connector id.
pub const ID: &str = "aws";

/// Services a request may name.
pub const SERVICES: &[&str] = &["ecr", "ecs", "eks", "lambda", "tagging"];

/// Scopes of one sync crawled at once when `AWS_CONCURRENCY` is not set.
pub const DEFAULT_SCOPE_CONCURRENCY: usize = 8;

/// The account of the default credentials, when no account is configured.
pub const DEFAULT_ACCOUNT: &str = "default";

static DESCRIPTOR: Descriptor = Descriptor {
    id: ID,
    display_name: "AWS",
    version: env!("CARGO_PKG_VERSION"),
    kinds: &[EntityKind::Asset, EntityKind::Tag],
    native_incremental: false,
    auth_modes: &["default_chain", "assume_role"],
    service: "connectors.aws.v1.AwsConnectorService",
};

/// A validated AWS sync request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsRequest {
    /// Configured account ids; empty = every configured account.
    pub account_ids: Vec<String>,
    /// Regions; empty = the configured regions.
    pub regions: Vec<String>,
    /// Services; empty = all.
    pub services: Vec<String>,
}

/// Settings of the AWS connector.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    /// Live, fixture or unavailable.
    pub availability: Availability,
    /// Account id → its role (ARN, external id).
    pub accounts: BTreeMap<String, crate::config::AwsRole>,
    /// Default regions.
    pub regions: Vec<String>,
    /// One endpoint for every service (`AWS_ENDPOINT_URL`).
    pub endpoint_url: Option<String>,
    /// Static keys (access key id, secret, session token); the default
    /// chain otherwise.
    pub static_keys: Option<(String, String, Option<String>)>,
    /// Short SDK retry backoff (fixtures on loopback).
    pub fast_retries: bool,
    /// Scopes of one sync crawled at once (`AWS_CONCURRENCY`).
    pub scope_concurrency: usize,
    /// `maxResults` of ECR's listings (`AWS_ECR_PAGE_SIZE`; in fixture mode,
    /// the page size the fixtures were written with).
    pub ecr_page_size: i32,
}

/// The AWS connector.
#[derive(Debug)]
pub struct AwsConnector {
    settings: AwsSettings,
    http: SharedUpstreamHttp,
    /// SDK configs by account and region (the account empty for the
    /// server's own credentials), loaded once: each carries its credentials
    /// cache, so the credentials of an instance role, a web identity or an
    /// assumed role are fetched once until they near expiry, not once per
    /// scope and sync.
    configs: std::sync::Mutex<HashMap<(String, String), SdkConfig>>,
}

/// Whether `region` looks like an AWS region name (`[a-z]{2}(-[a-z]+)+-\d+`).
pub fn valid_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && region.len() <= 32
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `id` is a 12-digit account id.
pub fn valid_account(id: &str) -> bool {
    id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit())
}

/// The error codes the SDK retries as throttling (aws-runtime's
/// `retries::classifiers::THROTTLING_ERRORS`): a call still answered one of
/// them after the SDK's attempts ends its scope RATE_LIMITED.
const THROTTLING_ERRORS: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

/// Retries an HTTP 429 as throttling and a 500, 502, 503 or 504 as a
/// transient error (as the SDK's own `HttpStatusCodeClassifier` does),
/// whether or not the answer names an AWS error code: the SDK retries by the
/// code ([`THROTTLING_ERRORS`], `RequestTimeout`), which AWS sends, but a
/// proxy or an AWS-compatible endpoint in front of it may not. Waiting out a
/// `Retry-After` is the shared layer's: it holds the next request until then.
#[derive(Debug)]
struct RetryableStatus;

impl ClassifyRetry for RetryableStatus {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.response().map(|response| response.status().as_u16()) {
            Some(429) => RetryAction::throttling_error(),
            Some(500 | 502 | 503 | 504) => RetryAction::transient_error(),
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "HTTP status"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::http_status_code_classifier()
    }
}

/// A client of the service `$sdk` on `config` that retries by status too
/// ([`RetryableStatus`]).
macro_rules! client {
    ($sdk:ident, $config:expr) => {
        $sdk::Client::from_conf(
            $sdk::config::Builder::from($config)
                .retry_classifier(RetryableStatus)
                .build(),
        )
    };
}

/// The scope error of a failed call: the service's error `code` when it
/// answered one, else what the text of a call without an answer says
/// (credentials that could not be loaded: STS's own codes are in the text).
/// An HTTP 429 (`status`) is a rate limit whatever its code.
fn failed(operation: &str, code: Option<&str>, status: Option<u16>, message: String) -> ScopeError {
    let denied = |text: &str| text.contains("AccessDenied") || text.contains("UnauthorizedOperation");
    let (denied, throttled) = match code {
        Some(code) => (denied(code), THROTTLING_ERRORS.contains(&code)),
        None => (
            denied(&message),
            message.contains("Throttl") || message.contains("TooManyRequests"),
        ),
    };
    let throttled = throttled || status == Some(429);
    let message = format!("{operation}: {message}");
    if denied {
        ScopeError::Failed {
            reason: DENIED,
            message,
        }
    } else if throttled {
        ScopeError::RateLimited {
            reset_time: None,
            message,
        }
    } else {
        ScopeError::Failed {
            reason: "UPSTREAM_ERROR",
            message,
        }
    }
}

/// The scope error of a failed SDK call: `operation: code: message` in the
/// service's own words, or, for a call that got no service answer (timeout,
/// connection, credentials), the chain of its causes. Not the SDK's `Debug`
/// form (what `DisplayErrorContext` ends with), which carried the whole raw
/// response, headers and body, into the message clients are sent. Throttling
/// (by the service's error code, or an HTTP 429 still answered after the
/// SDK's attempts) is RATE_LIMITED, until the answer's `Retry-After` if it
/// had one; an answer the SDK could not parse UPSTREAM_MALFORMED.
fn sdk_error<E>(operation: &str, error: SdkError<E, HttpResponse>) -> ScopeError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let message = sdk_message(&error);
    // A rate limit the shared layer knew to last beyond its wait budget.
    if let Some(crate::http::UpstreamError::RateLimited { reset_time, .. }) = crate::http::UpstreamError::find(&error) {
        return ScopeError::RateLimited {
            reset_time: *reset_time,
            message: format!("{operation}: {message}"),
        };
    }
    if let Some(cause) = malformed(&error) {
        return ScopeError::Failed {
            reason: "UPSTREAM_MALFORMED",
            message: format!("{operation}: aws returned a body that does not parse: {cause}"),
        };
    }
    let status = error.raw_response().map(|response| response.status().as_u16());
    match failed(operation, error.code(), status, message) {
        ScopeError::RateLimited {
            reset_time: None,
            message,
        } => ScopeError::RateLimited {
            reset_time: error.raw_response().and_then(retry_after),
            message,
        },
        other => other,
    }
}

/// When the answer `response` says to come back (its `Retry-After`).
fn retry_after(response: &HttpResponse) -> Option<chrono::DateTime<chrono::Utc>> {
    let value = response.headers().get("retry-after")?;
    let mut headers = ::http::HeaderMap::new();
    headers.insert(::http::header::RETRY_AFTER, value.parse().ok()?);
    crate::http::RateLimit::from_headers(&headers).reset_time(chrono::Utc::now())
}

/// A failed SDK call in the service's own words (`code: message`; an answer
/// without a code by its HTTP status), or, for a call that got no answer,
/// the chain of its causes.
fn sdk_message<E>(error: &SdkError<E, HttpResponse>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    match (error.code(), error.message(), error) {
        (Some(code), Some(message), _) => format!("{code}: {message}"),
        (Some(code), None, _) => code.to_owned(),
        // An error answer without a code: its status, and the message of
        // its body if it had one.
        (None, _, SdkError::ServiceError(context)) if !context.raw().status().is_success() => {
            let status = context.raw().status().as_u16();
            match uncoded_message(context.err()) {
                Some(message) => format!("HTTP {status}: {message}"),
                None => format!("HTTP {status} without an error code"),
            }
        }
        _ => causes(error),
    }
}

/// `error` and its causes, `: ` between them.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Why the SDK could not parse an answer, if that is why `error` failed: a
/// response it could not read (`ResponseError`), or a success whose body did
/// not deserialize (a 2xx answer is an error only so). The parser's words
/// ("Error at offset 20: unexpected end of stream"), never the body.
fn malformed<E>(error: &SdkError<E, HttpResponse>) -> Option<String>
where
    E: std::error::Error + 'static,
{
    let cause: &(dyn std::error::Error + 'static) = match error {
        SdkError::ResponseError(_) => std::error::Error::source(error)?,
        SdkError::ServiceError(context) if context.raw().status().is_success() => {
            let unhandled: &(dyn std::error::Error + 'static) = context.err();
            unhandled.source().unwrap_or(unhandled)
        }
        _ => return None,
    };
    Some(causes(cause))
}

/// The message of an error answer that named no error code (the SDK keeps
/// what it read of the body as the unhandled error's source).
fn uncoded_message<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a str> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(metadata) = error.downcast_ref::<aws_smithy_types::error::ErrorMetadata>() {
            return metadata.message();
        }
        cause = error.source();
    }
    None
}

/// Error codes of credentials AWS does not accept at all (unknown key,
/// wrong secret, expired session): the server cannot authenticate.
const REJECTED_CREDENTIALS: &[&str] = &[
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "MissingAuthenticationToken",
];

/// The STS session name of the credential check's AssumeRole calls.
pub const CHECK_SESSION: &str = "connectors-credential-check";

/// The credential check's error of a failed STS call `what`: rejected
/// credentials, a role that may not be assumed (AccessDenied; a 401 or 403
/// whose answer names no error code, by its status), or an STS that could
/// not be asked. Every one leaves the connector NOT_SERVING.
fn check_error<E>(what: &str, error: aws_sdk_sts::error::SdkError<E>) -> SyncError
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
{
    let status = error.raw_response().map(|response| response.status().as_u16());
    match (error.code(), status) {
        (Some(code), _) if REJECTED_CREDENTIALS.contains(&code) => {
            SyncError::UpstreamUnauthenticated(format!("{what}: {}", sdk_message(&error)))
        }
        (Some(code), _) if code.starts_with("AccessDenied") => {
            SyncError::UpstreamPermissionDenied(format!("{what}: {}", sdk_message(&error)))
        }
        (None, Some(401)) => SyncError::UpstreamUnauthenticated(format!("{what}: HTTP 401 without an error code")),
        (None, Some(403)) => SyncError::UpstreamPermissionDenied(format!("{what}: HTTP 403 without an error code")),
        _ => SyncError::Unavailable(format!("{what}: {}", sdk_message(&error))),
    }
}

fn timestamp(value: Option<&aws_smithy_types::DateTime>) -> Option<pbjson_types::Timestamp> {
    let value = value?;
    Some(pbjson_types::Timestamp {
        seconds: value.secs(),
        nanos: 0,
    })
}

fn rfc3339(value: Option<&str>) -> Option<pbjson_types::Timestamp> {
    // Lambda's LastModified: "2024-05-01T10:00:00.000+0000".
    let value = value?;
    let parsed = chrono::DateTime::parse_from_rfc3339(value)
        .or_else(|_| chrono::DateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()?;
    Some(pbjson_types::Timestamp {
        seconds: parsed.timestamp(),
        nanos: 0,
    })
}

fn sorted(mut labels: Vec<Label>) -> Vec<Label> {
    labels.sort_by(|a, b| (&a.key, &a.value).cmp(&(&b.key, &b.value)));
    labels
}

fn label(key: &str, value: impl Into<String>) -> Label {
    Label {
        key: key.to_owned(),
        value: value.into(),
    }
}

/// A label per (key, value) whose value the upstream sent.
fn present<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> impl Iterator<Item = Label> {
    pairs
        .into_iter()
        .filter_map(|(key, value)| value.map(|value| label(key, value)))
}

/// The default `maxResults` of ECR's DescribeRepositories and DescribeImages:
/// the largest page ECR serves (its own default is 100). Each page is one
/// signed request through the SDK's orchestrator, which cost about as much
/// CPU as parsing the 100 images it held (see the README's "Performance").
pub const DEFAULT_ECR_PAGE_SIZE: i32 = 1000;

/// DescribeImages pages fetched ahead of the upserts.
const ECR_PAGES_AHEAD: usize = 4;

/// What the ECR image fetcher hands over, repository after repository.
enum ImagePage {
    /// One page of the current repository's images, or the error that ends the crawl.
    Images(Result<Vec<aws_sdk_ecr::types::ImageDetail>, ScopeError>),
    /// The current repository has no more pages.
    RepositoryDone,
    /// The current repository was deleted since it was listed (ECR answered
    /// `RepositoryNotFoundException`): no more pages of it.
    RepositoryGone,
    /// Reading the current repository's images was denied (its repository
    /// policy, say, while the listing was allowed): no more pages of it; the
    /// other repositories are read.
    RepositoryDenied(ScopeError),
}

/// Fetches every DescribeImages page of `repositories`, in order, into `pages`;
/// stops at the first error other than a denied repository (after handing it
/// over) or when the receiver is gone.
async fn fetch_image_pages(
    client: aws_sdk_ecr::Client,
    page_size: i32,
    repositories: Vec<String>,
    pages: tokio::sync::mpsc::Sender<ImagePage>,
) {
    'repositories: for name in repositories {
        // Without `imageStatus`, DescribeImages answers ACTIVE images only:
        // archived ones (and those being restored) would not be inventoried.
        let mut paginator = client
            .describe_images()
            .repository_name(&name)
            .max_results(page_size)
            .filter(
                aws_sdk_ecr::types::DescribeImagesFilter::builder()
                    .image_status(aws_sdk_ecr::types::ImageStatusFilter::Any)
                    .build(),
            )
            .into_paginator()
            .send();
        while let Some(page) = paginator.next().await {
            let page = match page {
                Ok(mut page) => Ok(page.image_details.take().unwrap_or_default()),
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_repository_not_found_exception()) =>
                {
                    if pages.send(ImagePage::RepositoryGone).await.is_err() {
                        return;
                    }
                    continue 'repositories;
                }
                Err(error) => {
                    let error = sdk_error(&format!("ecr:DescribeImages {name}"), error);
                    if is_denied(&error) {
                        if pages.send(ImagePage::RepositoryDenied(error)).await.is_err() {
                            return;
                        }
                        continue 'repositories;
                    }
                    Err(error)
                }
            };
            let failed = page.is_err();
            if pages.send(ImagePage::Images(page)).await.is_err() || failed {
                return;
            }
        }
        if pages.send(ImagePage::RepositoryDone).await.is_err() {
            return;
        }
    }
}

/// The container images (sorted by container) and the asset of the ECS task
/// definition `arn`.
fn task_definition_asset(
    place: &Place,
    arn: &str,
    definition: &aws_sdk_ecs::types::TaskDefinition,
) -> (Vec<ContainerImage>, Entity) {
    let mut images: Vec<ContainerImage> = definition
        .container_definitions()
        .iter()
        .map(|c| ContainerImage {
            container: c.name().unwrap_or_default().to_owned(),
            image: c.image().unwrap_or_default().to_owned(),
            digest: String::new(),
        })
        .collect();
    images.sort_by(|a, b| a.container.cmp(&b.container));
    let name = format!("{}:{}", definition.family().unwrap_or_default(), definition.revision());
    let entity = asset(
        place,
        "aws.ecs.task-definition",
        "AWS::ECS::TaskDefinition",
        arn,
        &name,
        definition.status().map(|s| s.as_str()).unwrap_or_default(),
        String::new(),
        images.clone(),
        Vec::new(),
        timestamp(definition.registered_at()),
        None,
        Vec::new(),
    );
    (images, entity)
}

/// The asset of an ECR image of the repository `arn` (`name`, `uri`, urn
/// `repository_urn`); none for an image without a digest. Its status is
/// `imageStatus` (ACTIVE, ARCHIVED, ACTIVATING), and its attributes the tags,
/// the manifest and artifact media types and, for a referrer (a signature,
/// an SBOM), the digest of the image it refers to.
fn image_asset(
    place: &Place,
    arn: &str,
    name: &str,
    uri: &str,
    repository_urn: &str,
    image: &aws_sdk_ecr::types::ImageDetail,
) -> Option<Entity> {
    let digest = image.image_digest()?;
    let mut attributes: Vec<Label> = image
        .image_tags()
        .iter()
        .map(|tag| label("aws.ecr.image_tag", tag.as_str()))
        .collect();
    attributes.extend(present([
        ("aws.ecr.image_manifest_media_type", image.image_manifest_media_type()),
        ("aws.ecr.artifact_media_type", image.artifact_media_type()),
        ("aws.ecr.subject_manifest_digest", image.subject_manifest_digest()),
    ]));
    Some(asset(
        place,
        "aws.ecr.image",
        "AWS::ECR::Image",
        &[arn, "@", digest].concat(),
        &[name, "@", digest].concat(),
        image.image_status().map(|s| s.as_str()).unwrap_or_default(),
        repository_urn.to_owned(),
        vec![ContainerImage {
            container: String::new(),
            image: [uri, "@", digest].concat(),
            digest: digest.to_owned(),
        }],
        attributes,
        timestamp(image.image_pushed_at()),
        None,
        Vec::new(),
    ))
}

/// The reason of a call AWS denied.
const DENIED: &str = "UPSTREAM_PERMISSION_DENIED";

/// Whether `error` is a denied call.
fn is_denied(error: &ScopeError) -> bool {
    matches!(error, ScopeError::Failed { reason: DENIED, .. })
}

/// An item's own call that AWS denied though the listing that named it was
/// allowed (a repository policy, an IAM condition on the resource): the
/// scope goes on without the item and ends FAILED once the rest is sent
/// (`ScopeContext::fail_when_done`): the item may exist, and a scope that
/// ended OK without it would delete it at the next INCREMENTAL sync. Any
/// other error is returned, to end the scope at once.
fn denied_alone(ctx: &mut ScopeContext<'_>, error: ScopeError) -> Result<(), ScopeError> {
    if is_denied(&error) {
        ctx.fail_when_done(error)
    } else {
        Err(error)
    }
}

/// ECS's `failures[]` of `operation`'s answer, logged: `MISSING` is a
/// resource deleted since it was listed (left out, as a later listing would
/// not have it; its ARN is returned); any other reason fails the scope once
/// the rest is sent, as a denied item does.
fn ecs_failures(
    ctx: &mut ScopeContext<'_>,
    operation: &str,
    failures: &[aws_sdk_ecs::types::Failure],
) -> Result<Vec<String>, ScopeError> {
    let mut missing = Vec::new();
    for failure in failures {
        let arn = failure.arn().unwrap_or_default();
        let reason = failure.reason().unwrap_or_default();
        let detail = failure.detail().unwrap_or_default();
        if reason == "MISSING" {
            tracing::info!(
                connector = ID,
                operation,
                arn,
                "ecs resource deleted since it was listed; left out"
            );
            missing.push(arn.to_owned());
            continue;
        }
        // These reasons are not error codes.
        ctx.fail_when_done(ScopeError::Failed {
            reason: "UPSTREAM_ERROR",
            message: if detail.is_empty() {
                format!("{operation}: {arn}: {reason}")
            } else {
                format!("{operation}: {arn}: {reason} ({detail})")
            },
        })?;
    }
    Ok(missing)
}

/// Lambda functions whose details are asked for at once.
const LAMBDA_DETAILS_AT_ONCE: usize = 4;

/// What ListFunctions leaves out of a function: its state (`State`, which the
/// Lambda API reference says only GetFunction and GetFunctionConfiguration
/// carry) and a container image function's image.
/// And its aliases (ListAliases), each `name=version`: the published
/// version a caller of the alias runs.
struct FunctionDetails {
    state: String,
    images: Vec<ContainerImage>,
    aliases: Vec<String>,
    /// ListAliases was denied (a policy written before the connector asked
    /// for aliases): the function is sent without them, and the scope
    /// fails once the rest is sent, naming the permission.
    aliases_denied: Option<ScopeError>,
}

/// The details of a listed function, then its aliases. `None` for a
/// function deleted since it was listed (`ResourceNotFoundException`).
async fn function_details(
    client: &aws_sdk_lambda::Client,
    function: &aws_sdk_lambda::types::FunctionConfiguration,
) -> Result<Option<FunctionDetails>, ScopeError> {
    let Some(mut details) = function_state(client, function).await? else {
        return Ok(None);
    };
    let arn = function.function_arn().unwrap_or_default();
    let name = function.function_name().unwrap_or(arn);
    let mut pages = client.list_aliases().function_name(name).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return Ok(gone_since_listed(arn));
            }
            Err(error) => {
                let error = sdk_error(&format!("lambda:ListAliases {name}"), error);
                if is_denied(&error) {
                    details.aliases.clear();
                    details.aliases_denied = Some(error);
                    break;
                }
                return Err(error);
            }
        };
        for alias in page.aliases() {
            details.aliases.push(format!(
                "{}={}",
                alias.name().unwrap_or_default(),
                alias.function_version().unwrap_or_default()
            ));
        }
    }
    Ok(Some(details))
}

/// No details: the function `arn` was deleted since it was listed (logged).
fn gone_since_listed(arn: &str) -> Option<FunctionDetails> {
    tracing::info!(connector = ID, function = %arn, "lambda function deleted since it was listed; left out");
    None
}

/// The state (and a container image function's image) of a listed
/// function: GetFunction for a container image function (its Code has the
/// image, its Configuration the state), GetFunctionConfiguration for the
/// others. `None` for a function deleted since it was listed.
async fn function_state(
    client: &aws_sdk_lambda::Client,
    function: &aws_sdk_lambda::types::FunctionConfiguration,
) -> Result<Option<FunctionDetails>, ScopeError> {
    let arn = function.function_arn().unwrap_or_default();
    let name = function.function_name().unwrap_or(arn);
    let gone = || Ok(gone_since_listed(arn));
    let state = |state: Option<&aws_sdk_lambda::types::State>| state.map(|s| s.as_str().to_owned()).unwrap_or_default();
    if function.package_type() == Some(&aws_sdk_lambda::types::PackageType::Image) {
        let answer = match client.get_function().function_name(name).send().await {
            Ok(answer) => answer,
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) =>
            {
                return gone();
            }
            Err(error) => return Err(sdk_error(&format!("lambda:GetFunction {name}"), error)),
        };
        let mut images = Vec::new();
        if let Some(code) = answer.code()
            && let Some(image) = code.image_uri()
        {
            let resolved = code.resolved_image_uri().unwrap_or_default();
            let digest = resolved.rsplit_once('@').map(|(_, digest)| digest).unwrap_or_default();
            images.push(ContainerImage {
                container: String::new(),
                image: image.to_owned(),
                digest: digest.to_owned(),
            });
        }
        return Ok(Some(FunctionDetails {
            state: state(answer.configuration().and_then(|c| c.state())),
            images,
            aliases: Vec::new(),
            aliases_denied: None,
        }));
    }
    match client.get_function_configuration().function_name(name).send().await {
        Ok(answer) => Ok(Some(FunctionDetails {
            state: state(answer.state()),
            images: Vec::new(),
            aliases: Vec::new(),
            aliases_denied: None,
        })),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            gone()
        }
        Err(error) => Err(sdk_error(&format!("lambda:GetFunctionConfiguration {name}"), error)),
    }
}

/// `base` with the credentials of `role` in `region`, assumed through STS
/// (session `session`, with the role's external id if it has one) with
/// `base`'s own credentials. `base` must come from the loader
/// (`aws_config::defaults`): STS needs its time source and sleep.
pub async fn assume_role(base: SdkConfig, role: &crate::config::AwsRole, region: &str, session: &str) -> SdkConfig {
    let mut provider = aws_config::sts::AssumeRoleProvider::builder(&role.arn)
        .session_name(session)
        .region(Region::new(region.to_owned()));
    if let Some(external_id) = &role.external_id {
        provider = provider.external_id(external_id);
    }
    let provider = provider.configure(&base).build().await;
    base.into_builder()
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(provider))
        .build()
}

/// Where an asset lives.
#[derive(Debug, Clone, Default)]
pub struct Place {
    /// The scope's account: its id, or "default" for the server's own
    /// credentials.
    pub account: String,
    /// Region.
    pub region: String,
}

/// The account id (12 digits) of the ARN `arn`
/// (`arn:<partition>:<service>:<region>:<account>:<resource>`).
fn arn_account(arn: &str) -> Option<&str> {
    let account = arn.strip_prefix("arn:")?.split(':').nth(3)?;
    valid_account(account).then_some(account)
}

/// An asset entity. Its `account` is the account of its ARN `id` (the owner:
/// the server's own account too, whose scope says "default"), else the
/// scope's.
#[allow(clippy::too_many_arguments)]
pub fn asset(
    place: &Place,
    asset_type: &str,
    native_type: &str,
    id: &str,
    name: &str,
    status: &str,
    parent_urn: String,
    images: Vec<ContainerImage>,
    attributes: Vec<Label>,
    create_time: Option<pbjson_types::Timestamp>,
    update_time: Option<pbjson_types::Timestamp>,
    labels: Vec<Label>,
) -> Entity {
    Entity {
        urn: urn(ID, EntityKind::Asset, id),
        kind: EntityKind::Asset as i32,
        native_id: id.to_owned(),
        display_name: name.to_owned(),
        labels: sorted(labels),
        parent_urn,
        body: Some(Body::Asset(CloudAsset {
            asset_type: asset_type.to_owned(),
            native_type: native_type.to_owned(),
            cloud_platform: "aws".into(),
            account: arn_account(id).unwrap_or(&place.account).to_owned(),
            region: place.region.clone(),
            status: status.to_owned(),
            external_id: id.split('@').next().unwrap_or(id).to_owned(),
            images,
            attributes: sorted(attributes),
            create_time,
            update_time,
        })),
    }
}

/// A Tag entity of a tagged resource.
pub fn tag_entity(arn: &str, key: &str, value: &str) -> Entity {
    let native_id = [arn, "#", key].concat();
    Entity {
        urn: urn(ID, EntityKind::Tag, &native_id),
        kind: EntityKind::Tag as i32,
        native_id,
        display_name: [key, "=", value].concat(),
        labels: Vec::new(),
        parent_urn: urn(ID, EntityKind::Asset, arn),
        body: Some(Body::Tag(Tag {
            resource_id: arn.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
        })),
    }
}

/// Parses "account:<id>/region:<region>/service:<service>".
fn parse_scope(key: &str) -> Option<(&str, &str, &str)> {
    let rest = key.strip_prefix("account:")?;
    let (account, rest) = rest.split_once("/region:")?;
    let (region, service) = rest.split_once("/service:")?;
    Some((account, region, service))
}

impl AwsConnector {
    /// A connector whose SDK clients send through `http`.
    pub fn new(settings: AwsSettings, http: SharedUpstreamHttp) -> Self {
        Self {
            settings,
            http,
            configs: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn retry_config(&self) -> aws_config::retry::RetryConfig {
        let config = aws_config::retry::RetryConfig::standard().with_max_attempts(4);
        if self.settings.fast_retries {
            config
                .with_initial_backoff(std::time::Duration::from_millis(10))
                .with_max_backoff(std::time::Duration::from_millis(100))
        } else {
            config
        }
    }

    /// A config loaded before for `account` in `region`.
    fn loaded(&self, account: &str, region: &str) -> Option<SdkConfig> {
        let configs = self.configs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        configs.get(&(account.to_owned(), region.to_owned())).cloned()
    }

    /// Keeps `config` for `account` in `region` (one loaded meanwhile by
    /// another scope is kept instead: either will do).
    fn keep(&self, account: &str, region: &str, config: SdkConfig) -> SdkConfig {
        let mut configs = self.configs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        configs
            .entry((account.to_owned(), region.to_owned()))
            .or_insert(config)
            .clone()
    }

    /// The SDK config of `region` with the server's own credentials.
    async fn base_config(&self, region: &str) -> SdkConfig {
        if let Some(config) = self.loaded("", region) {
            return config;
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(self.http.clone())
            .retry_config(self.retry_config())
            .region(Region::new(region.to_owned()));
        if let Some(endpoint) = &self.settings.endpoint_url {
            loader = loader.endpoint_url(endpoint.clone());
        }
        if let Some((id, secret, token)) = &self.settings.static_keys {
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                id.clone(),
                secret.clone(),
                token.clone(),
                None,
                "server-config",
            ));
        }
        let config = loader.load().await;
        self.keep("", region, config)
    }

    /// The SDK config of `region` for `account`: through its role, if
    /// `AWS_ACCOUNTS` names one.
    async fn sdk_config(&self, account: &str, region: &str) -> SdkConfig {
        let base = self.base_config(region).await;
        let Some(role) = self.settings.accounts.get(account) else {
            return base;
        };
        if let Some(config) = self.loaded(account, region) {
            return config;
        }
        let config = assume_role(base, role, region, "connectors-inventory").await;
        self.keep(account, region, config)
    }

    async fn emit(
        &self,
        ctx: &mut ScopeContext<'_>,
        operation: &'static str,
        entity: Entity,
    ) -> Result<(), ScopeError> {
        if ctx.is_cancelled() {
            return Err(ScopeError::Cancelled);
        }
        ctx.upsert(entity, UpsertMeta::new(operation, "")).await
    }

    async fn sync_ecr(&self, config: &SdkConfig, place: &Place, ctx: &mut ScopeContext<'_>) -> Result<(), ScopeError> {
        let client = client!(aws_sdk_ecr, config);
        let mut pages = client
            .describe_repositories()
            .max_results(self.settings.ecr_page_size)
            .into_paginator()
            .send();
        let mut repositories = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("ecr:DescribeRepositories", e))?;
            repositories.extend(page.repositories().iter().cloned());
        }
        // The image pages are fetched and parsed by a task of their own, a few
        // pages ahead of the upserts, so parsing and the engine's work run on
        // different cores; the entities still go out in the same order.
        let names: Vec<String> = repositories
            .iter()
            .map(|r| r.repository_name().unwrap_or_default().to_owned())
            .collect();
        let (pages_tx, mut image_pages) = tokio::sync::mpsc::channel(ECR_PAGES_AHEAD);
        let _fetcher =
            crate::http::spawn_in_sync(fetch_image_pages(client, self.settings.ecr_page_size, names, pages_tx));
        for repository in repositories {
            let arn = repository.repository_arn().unwrap_or_default().to_owned();
            let name = repository.repository_name().unwrap_or_default().to_owned();
            let repository_urn = urn(ID, EntityKind::Asset, &arn);
            let mut attributes = Vec::new();
            if let Some(uri) = repository.repository_uri() {
                attributes.push(label("aws.ecr.repository_uri", uri));
            }
            let entity = asset(
                place,
                "aws.ecr.repository",
                "AWS::ECR::Repository",
                &arn,
                &name,
                "",
                String::new(),
                Vec::new(),
                attributes,
                timestamp(repository.created_at()),
                None,
                Vec::new(),
            );
            // The repository is sent once its first page of images says it
            // still exists: one deleted since it was listed is left out, as
            // a later listing would not have it.
            let mut next = image_pages.recv().await;
            if matches!(next, Some(ImagePage::RepositoryGone)) {
                tracing::info!(connector = ID, repository = %arn, "ecr repository deleted since it was listed; left out");
                continue;
            }
            self.emit(ctx, "ecr:DescribeRepositories", entity).await?;
            let uri = repository.repository_uri().unwrap_or(&name);
            loop {
                let page = match next.take() {
                    Some(page) => Some(page),
                    None => image_pages.recv().await,
                };
                let images = match page {
                    Some(ImagePage::Images(images)) => images?,
                    // Sent without its images; the scope fails once the
                    // other repositories are sent.
                    Some(ImagePage::RepositoryDenied(error)) => {
                        denied_alone(ctx, error)?;
                        break;
                    }
                    // Deleted while its images were listed: what was sent of
                    // it is deleted by the next sync.
                    Some(ImagePage::RepositoryDone | ImagePage::RepositoryGone) => break,
                    // The fetcher ends only after the last repository's marker.
                    None => {
                        return Err(ScopeError::Failed {
                            reason: "UPSTREAM_ERROR",
                            message: "ecr:DescribeImages: the image fetcher ended early".into(),
                        });
                    }
                };
                // By reference: an `ImageDetail` is some 300 bytes, and moving
                // each out of the page was 2% of the server's CPU (README,
                // "Performance").
                for image in &images {
                    let Some(entity) = image_asset(place, &arn, &name, uri, &repository_urn, image) else {
                        continue;
                    };
                    self.emit(ctx, "ecr:DescribeImages", entity).await?;
                }
            }
        }
        Ok(())
    }

    async fn sync_ecs(&self, config: &SdkConfig, place: &Place, ctx: &mut ScopeContext<'_>) -> Result<(), ScopeError> {
        let client = client!(aws_sdk_ecs, config);
        let mut cluster_arns = Vec::new();
        let mut pages = client.list_clusters().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("ecs:ListClusters", e))?;
            cluster_arns.extend(page.cluster_arns().iter().cloned());
        }
        let mut images_of: BTreeMap<String, Vec<ContainerImage>> = BTreeMap::new();
        let mut definitions = Vec::new();
        let mut pages = client.list_task_definitions().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("ecs:ListTaskDefinitions", e))?;
            definitions.extend(page.task_definition_arns().iter().cloned());
        }
        for arn in definitions {
            let answer = match client.describe_task_definition().task_definition(&arn).send().await {
                Ok(answer) => answer,
                // Denied for this revision: the others are read; a service
                // that runs it is sent without its images (not asked again).
                Err(error) => {
                    denied_alone(ctx, sdk_error(&format!("ecs:DescribeTaskDefinition {arn}"), error))?;
                    images_of.insert(arn, Vec::new());
                    continue;
                }
            };
            let Some(definition) = answer.task_definition() else {
                continue;
            };
            let (images, entity) = task_definition_asset(place, &arn, definition);
            images_of.insert(arn, images);
            self.emit(ctx, "ecs:DescribeTaskDefinition", entity).await?;
        }
        let mut missing_clusters = Vec::new();
        for chunk in cluster_arns.chunks(100) {
            let answer = match client
                .describe_clusters()
                .set_clusters(Some(chunk.to_vec()))
                .send()
                .await
            {
                Ok(answer) => answer,
                // Denied for these clusters (one denied denies the call):
                // they are left out; their services are still listed.
                Err(error) => {
                    let what = match chunk {
                        [one] => format!("ecs:DescribeClusters {one}"),
                        _ => format!("ecs:DescribeClusters of {} clusters from {}", chunk.len(), chunk[0]),
                    };
                    denied_alone(ctx, sdk_error(&what, error))?;
                    continue;
                }
            };
            missing_clusters.extend(ecs_failures(ctx, "ecs:DescribeClusters", answer.failures())?);
            for cluster in answer.clusters() {
                let arn = cluster.cluster_arn().unwrap_or_default().to_owned();
                let entity = asset(
                    place,
                    "aws.ecs.cluster",
                    "AWS::ECS::Cluster",
                    &arn,
                    cluster.cluster_name().unwrap_or_default(),
                    cluster.status().unwrap_or_default(),
                    String::new(),
                    Vec::new(),
                    Vec::new(),
                    None,
                    None,
                    Vec::new(),
                );
                self.emit(ctx, "ecs:DescribeClusters", entity).await?;
            }
        }
        // A cluster deleted since it was listed has no services to list.
        for cluster_arn in cluster_arns.iter().filter(|arn| !missing_clusters.contains(arn)) {
            let cluster_urn = urn(ID, EntityKind::Asset, cluster_arn);
            let mut service_arns = Vec::new();
            let mut pages = client.list_services().cluster(cluster_arn).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = match page {
                    Ok(page) => page,
                    // Deleted since it was listed: it has no services.
                    Err(error)
                        if error
                            .as_service_error()
                            .is_some_and(|e| e.is_cluster_not_found_exception()) =>
                    {
                        tracing::info!(connector = ID, cluster = %cluster_arn, "ecs cluster deleted since it was listed; no services");
                        service_arns.clear();
                        break;
                    }
                    // Denied for this cluster: the others' services are read.
                    Err(error) => {
                        denied_alone(ctx, sdk_error(&format!("ecs:ListServices {cluster_arn}"), error))?;
                        service_arns.clear();
                        break;
                    }
                };
                service_arns.extend(page.service_arns().iter().cloned());
            }
            for chunk in service_arns.chunks(10) {
                let answer = match client
                    .describe_services()
                    .cluster(cluster_arn)
                    .set_services(Some(chunk.to_vec()))
                    .send()
                    .await
                {
                    Ok(answer) => answer,
                    Err(error) => {
                        denied_alone(ctx, sdk_error(&format!("ecs:DescribeServices {cluster_arn}"), error))?;
                        continue;
                    }
                };
                ecs_failures(ctx, "ecs:DescribeServices", answer.failures())?;
                for service in answer.services() {
                    let arn = service.service_arn().unwrap_or_default().to_owned();
                    let definition = service.task_definition().unwrap_or_default();
                    // ListTaskDefinitions lists only ACTIVE revisions: a service
                    // may run a deregistered (INACTIVE) one, described (and sent)
                    // once, when a service first names it.
                    if !definition.is_empty() && !images_of.contains_key(definition) {
                        let images = self.inactive_task_definition(&client, place, ctx, definition).await?;
                        images_of.insert(definition.to_owned(), images);
                    }
                    let entity = asset(
                        place,
                        "aws.ecs.service",
                        "AWS::ECS::Service",
                        &arn,
                        service.service_name().unwrap_or_default(),
                        service.status().unwrap_or_default(),
                        cluster_urn.clone(),
                        images_of.get(definition).cloned().unwrap_or_default(),
                        vec![label("aws.ecs.task_definition", definition)],
                        timestamp(service.created_at()),
                        None,
                        Vec::new(),
                    );
                    self.emit(ctx, "ecs:DescribeServices", entity).await?;
                }
            }
        }
        Ok(())
    }

    /// The images of the task definition `arn` a service runs that
    /// ListTaskDefinitions did not list (a deregistered, INACTIVE revision,
    /// which stays describable): sent as an asset of its own. None for one
    /// ECS no longer knows (`ClientException`: deleted since).
    async fn inactive_task_definition(
        &self,
        client: &aws_sdk_ecs::Client,
        place: &Place,
        ctx: &mut ScopeContext<'_>,
        arn: &str,
    ) -> Result<Vec<ContainerImage>, ScopeError> {
        let answer = match client.describe_task_definition().task_definition(arn).send().await {
            Ok(answer) => answer,
            Err(error) if error.as_service_error().is_some_and(|e| e.is_client_exception()) => {
                tracing::info!(connector = ID, task_definition = %arn, "ecs task definition of a service not found; no images");
                return Ok(Vec::new());
            }
            Err(error) => {
                denied_alone(ctx, sdk_error(&format!("ecs:DescribeTaskDefinition {arn}"), error))?;
                return Ok(Vec::new());
            }
        };
        let Some(definition) = answer.task_definition() else {
            return Ok(Vec::new());
        };
        let (images, entity) = task_definition_asset(place, arn, definition);
        self.emit(ctx, "ecs:DescribeTaskDefinition", entity).await?;
        Ok(images)
    }

    async fn sync_eks(&self, config: &SdkConfig, place: &Place, ctx: &mut ScopeContext<'_>) -> Result<(), ScopeError> {
        let client = client!(aws_sdk_eks, config);
        let mut names = Vec::new();
        // `include=all`: EKS Connector (connected) clusters too, which
        // ListClusters leaves out without it.
        let mut pages = client.list_clusters().include("all").into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("eks:ListClusters", e))?;
            names.extend(page.clusters().iter().cloned());
        }
        for name in names {
            let answer = match client.describe_cluster().name(&name).send().await {
                Ok(answer) => answer,
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception()) =>
                {
                    tracing::info!(connector = ID, cluster = %name, "eks cluster deleted since it was listed; left out");
                    continue;
                }
                Err(error) => {
                    denied_alone(ctx, sdk_error(&format!("eks:DescribeCluster {name}"), error))?;
                    continue;
                }
            };
            let Some(cluster) = answer.cluster() else { continue };
            let arn = cluster.arn().unwrap_or_default().to_owned();
            let attributes: Vec<Label> = present([
                ("aws.eks.version", cluster.version()),
                ("aws.eks.endpoint", cluster.endpoint()),
                ("aws.eks.platform_version", cluster.platform_version()),
                (
                    "aws.eks.connector_provider",
                    cluster.connector_config().and_then(|c| c.provider()),
                ),
            ])
            .collect();
            let labels = cluster
                .tags()
                .map(|tags| tags.iter().map(|(k, v)| label(k, v.as_str())).collect())
                .unwrap_or_default();
            let entity = asset(
                place,
                "aws.eks.cluster",
                "AWS::EKS::Cluster",
                &arn,
                &name,
                cluster.status().map(|s| s.as_str()).unwrap_or_default(),
                String::new(),
                Vec::new(),
                attributes,
                timestamp(cluster.created_at()),
                None,
                labels,
            );
            self.emit(ctx, "eks:DescribeCluster", entity).await?;
        }
        Ok(())
    }

    async fn sync_lambda(
        &self,
        config: &SdkConfig,
        place: &Place,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        use futures::StreamExt as _;

        let client = client!(aws_sdk_lambda, config);
        let mut pages = client.list_functions().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("lambda:ListFunctions", e))?;
            // ListFunctions leaves out the state (and the code location): each
            // function's details come from a request of its own, a few at a
            // time, and are sent in the listing's order.
            // (The futures are built first: a closure in the stream's type
            // would make the scope's future not `Send`.)
            let requests: Vec<_> = page
                .functions()
                .iter()
                .map(|function| function_details(&client, function))
                .collect();
            let mut details = futures::stream::iter(requests).buffered(LAMBDA_DETAILS_AT_ONCE);
            for function in page.functions() {
                let details = match details.next().await {
                    Some(Ok(Some(details))) => details,
                    // Deleted since it was listed.
                    Some(Ok(None)) => continue,
                    // Denied for this function: the others are sent.
                    Some(Err(error)) => {
                        denied_alone(ctx, error)?;
                        continue;
                    }
                    None => {
                        return Err(ScopeError::Failed {
                            reason: "UPSTREAM_ERROR",
                            message: "lambda:GetFunctionConfiguration: the details ended early".into(),
                        });
                    }
                };
                let FunctionDetails {
                    state,
                    images,
                    aliases,
                    aliases_denied,
                } = details;
                if let Some(error) = aliases_denied {
                    ctx.fail_when_done(error)?;
                }
                let arn = function.function_arn().unwrap_or_default();
                let mut attributes = Vec::new();
                if let Some(runtime) = function.runtime() {
                    attributes.push(label("aws.lambda.runtime", runtime.as_str()));
                }
                if let Some(package) = function.package_type() {
                    attributes.push(label("aws.lambda.package_type", package.as_str()));
                }
                for architecture in function.architectures() {
                    attributes.push(label("aws.lambda.architecture", architecture.as_str()));
                }
                for layer in function.layers() {
                    attributes.push(label("aws.lambda.layer", layer.arn().unwrap_or_default()));
                }
                for alias in aliases {
                    attributes.push(label("aws.lambda.alias", alias));
                }
                let entity = asset(
                    place,
                    "aws.lambda.function",
                    "AWS::Lambda::Function",
                    arn,
                    function.function_name().unwrap_or_default(),
                    &state,
                    String::new(),
                    images,
                    attributes,
                    None,
                    rfc3339(function.last_modified()),
                    Vec::new(),
                );
                self.emit(ctx, "lambda:ListFunctions", entity).await?;
            }
        }
        Ok(())
    }

    async fn sync_tagging(&self, config: &SdkConfig, ctx: &mut ScopeContext<'_>) -> Result<(), ScopeError> {
        let client = client!(aws_sdk_resourcegroupstagging, config);
        let mut pages = client.get_resources().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error("tag:GetResources", e))?;
            for mapping in page.resource_tag_mapping_list() {
                let Some(arn) = mapping.resource_arn() else { continue };
                for tag in mapping.tags() {
                    self.emit(ctx, "tag:GetResources", tag_entity(arn, tag.key(), tag.value()))
                        .await?;
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Connector for AwsConnector {
    type Request = AwsRequest;

    fn descriptor(&self) -> &'static Descriptor {
        &DESCRIPTOR
    }

    fn availability(&self) -> Availability {
        self.settings.availability.clone()
    }

    /// STS `GetCallerIdentity` with the server's own credentials (allowed
    /// to every identity AWS accepts), then `AssumeRole` into each role of
    /// `AWS_ACCOUNTS`, as syncs do: the first that fails is the error.
    /// A missing service permission still fails only its scopes.
    async fn authenticate(&self) -> Result<(), SyncError> {
        if !matches!(self.settings.availability, Availability::Live { .. }) {
            return Ok(());
        }
        let region = self.settings.regions.first().map_or("us-east-1", String::as_str);
        let sts = aws_sdk_sts::Client::new(&self.base_config(region).await);
        sts.get_caller_identity()
            .send()
            .await
            .map_err(|error| check_error("sts:GetCallerIdentity", error))?;
        for (account, role) in &self.settings.accounts {
            sts.assume_role()
                .role_arn(&role.arn)
                .role_session_name(CHECK_SESSION)
                .duration_seconds(900)
                .set_external_id(role.external_id.clone())
                .send()
                .await
                .map_err(|error| check_error(&format!("account {account}: sts:AssumeRole {}", role.arn), error))?;
        }
        Ok(())
    }

    fn scopes(&self, request: &AwsRequest) -> Result<Vec<Scope>, SyncError> {
        let accounts: Vec<String> = if !request.account_ids.is_empty() {
            for (i, id) in request.account_ids.iter().enumerate() {
                if !self.settings.accounts.contains_key(id) {
                    return Err(SyncError::invalid(
                        format!("account_ids[{i}]"),
                        format!("{id:?} is not an account configured in the server's AWS_ACCOUNTS"),
                    ));
                }
            }
            request.account_ids.clone()
        } else if self.settings.accounts.is_empty() {
            vec![DEFAULT_ACCOUNT.to_owned()]
        } else {
            self.settings.accounts.keys().cloned().collect()
        };
        let regions = if request.regions.is_empty() {
            &self.settings.regions
        } else {
            &request.regions
        };
        let services: Vec<&str> = if request.services.is_empty() {
            SERVICES.to_vec()
        } else {
            request.services.iter().map(String::as_str).collect()
        };
        let mut scopes = Vec::new();
        for account in &accounts {
            for region in regions {
                for service in &services {
                    scopes.push(Scope {
                        key: format!("account:{account}/region:{region}/service:{service}"),
                        region: region.clone(),
                    });
                }
            }
        }
        Ok(scopes)
    }

    fn scope_concurrency(&self) -> usize {
        self.settings.scope_concurrency
    }

    fn request_fingerprint(&self, _request: &AwsRequest) -> String {
        // Accounts, regions and services are all part of the scope keys.
        String::new()
    }

    async fn sync_scope(
        &self,
        _request: &AwsRequest,
        scope: &Scope,
        ctx: &mut ScopeContext<'_>,
    ) -> Result<(), ScopeError> {
        let Some((account, region, service)) = parse_scope(&scope.key) else {
            return Err(ScopeError::Fatal(SyncError::Internal(format!(
                "bad scope {}",
                scope.key
            ))));
        };
        let config = self.sdk_config(account, region).await;
        let place = Place {
            account: account.to_owned(),
            region: region.to_owned(),
        };
        match service {
            "ecr" if ctx.wants(EntityKind::Asset) => self.sync_ecr(&config, &place, ctx).await,
            "ecs" if ctx.wants(EntityKind::Asset) => self.sync_ecs(&config, &place, ctx).await,
            "eks" if ctx.wants(EntityKind::Asset) => self.sync_eks(&config, &place, ctx).await,
            "lambda" if ctx.wants(EntityKind::Asset) => self.sync_lambda(&config, &place, ctx).await,
            "tagging" if ctx.wants(EntityKind::Tag) => self.sync_tagging(&config, ctx).await,
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_and_accounts_are_validated() {
        assert!(valid_region("us-east-1"));
        assert!(valid_region("ap-southeast-2"));
        assert!(valid_region("us-gov-west-1"));
        assert!(!valid_region("us-east"));
        assert!(!valid_region("US-east-1"));
        assert!(!valid_region("useast-1"));
        assert!(!valid_region("us--1"));
        assert!(valid_account("123456789012"));
        assert!(!valid_account("12345678901"));
        assert!(!valid_account("12345678901a"));
    }

    #[test]
    fn errors_are_classified_by_the_service_code() {
        let outcome =
            |code: Option<&str>, message: &str| match failed("lambda:ListFunctions", code, None, message.into()) {
                ScopeError::Failed { reason, message } => (reason, message),
                ScopeError::RateLimited {
                    reset_time: None,
                    message,
                } => ("RATE_LIMITED", message),
                other => panic!("{other:?}"),
            };
        assert_eq!(
            outcome(
                Some("TooManyRequestsException"),
                "TooManyRequestsException: Rate exceeded"
            ),
            (
                "RATE_LIMITED",
                "lambda:ListFunctions: TooManyRequestsException: Rate exceeded".into()
            )
        );
        assert_eq!(
            outcome(Some("ThrottlingException"), "ThrottlingException").0,
            "RATE_LIMITED"
        );
        assert_eq!(
            outcome(Some("AccessDeniedException"), "AccessDeniedException: no").0,
            "UPSTREAM_PERMISSION_DENIED"
        );
        // A code decides, whatever its message says.
        assert_eq!(
            outcome(Some("ServiceException"), "ServiceException: Throttling upstream").0,
            "UPSTREAM_ERROR"
        );
        // Without a code (credentials not loaded), the text.
        assert_eq!(
            outcome(None, "failed to load credentials: AccessDenied: not authorized").0,
            "UPSTREAM_PERMISSION_DENIED"
        );
        assert_eq!(
            outcome(None, "dispatch failure: io error: connection reset").0,
            "UPSTREAM_ERROR"
        );
        // A 429 is a rate limit, with or without a code.
        let limited = |code: Option<&str>| match failed("eks:DescribeCluster", code, Some(429), "HTTP 429: slow".into())
        {
            ScopeError::RateLimited { message, .. } => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(limited(None), "eks:DescribeCluster: HTTP 429: slow");
        assert_eq!(limited(Some("SlowDownPlease")), "eks:DescribeCluster: HTTP 429: slow");
    }

    #[test]
    fn scopes_parse_back() {
        assert_eq!(
            parse_scope("account:123456789012/region:eu-west-1/service:ecr"),
            Some(("123456789012", "eu-west-1", "ecr"))
        );
        assert_eq!(parse_scope("org:x"), None);
    }

    #[test]
    fn tag_and_image_urns() {
        let tag = tag_entity("arn:aws:lambda:us-east-1:123456789012:function:f", "team", "pay");
        assert_eq!(
            tag.urn,
            "urn:connectors:aws:tag:arn:aws:lambda:us-east-1:123456789012:function:f#team"
        );
        assert_eq!(
            tag.parent_urn,
            "urn:connectors:aws:asset:arn:aws:lambda:us-east-1:123456789012:function:f"
        );
        let place = Place {
            account: DEFAULT_ACCOUNT.into(),
            region: "us-east-1".into(),
        };
        let image = asset(
            &place,
            "aws.ecr.image",
            "AWS::ECR::Image",
            "arn:aws:ecr:us-east-1:123456789012:repository/api@sha256:ab",
            "api@sha256:ab",
            "",
            String::new(),
            Vec::new(),
            vec![label("b", "2"), label("a", "1")],
            None,
            None,
            Vec::new(),
        );
        assert_eq!(
            image.urn,
            "urn:connectors:aws:asset:arn:aws:ecr:us-east-1:123456789012:repository/api@sha256:ab"
        );
        let Some(Body::Asset(body)) = image.body else {
            panic!("asset")
        };
        assert_eq!(body.external_id, "arn:aws:ecr:us-east-1:123456789012:repository/api");
        assert_eq!(body.attributes[0].key, "a");
        // The server's own account: its scope says "default", its ARNs the id.
        assert_eq!(body.account, "123456789012");
        assert_eq!(
            arn_account("arn:aws-us-gov:eks:us-gov-west-1:111122223333:cluster/c"),
            Some("111122223333")
        );
        assert_eq!(arn_account("arn:aws:ecs:us-east-1:default:cluster/c"), None);
        assert_eq!(arn_account(""), None);
        assert_eq!(
            rfc3339(Some("2024-05-01T10:00:00.000+0000")).map(|t| t.seconds),
            Some(1_714_557_600)
        );
    }
}
