//! GitHub's GraphQL API, as far as the GitHub connector reads it: git blobs
//! by oid under aliased `repository(owner:, name:)` fields, the batched
//! manifest reads of `providers::github::client::read_blobs`. Fixture mode
//! answers them from the recorded REST blob exchanges (the same git objects
//! through the other API), the benchmark's estate from code.
//!
//! The answers keep GitHub's shapes: `data` keyed by the aliases, `null` for
//! a repository that cannot be resolved with a `NOT_FOUND` error whose `path`
//! names its alias, `null` for an unknown object, and a query this view does
//! not understand is an error without `data`, as GitHub answers a query that
//! does not validate.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use graphql_parser::query::{Definition, Document, OperationDefinition, Selection, SelectionSet, Value};
use serde_json::{Map, Value as Json, json};

use super::{FixtureSet, RecordedResponse, Synthesizer};

/// Where the view finds repositories and blobs.
pub trait BlobSource {
    /// Whether the repository exists.
    fn has_repository(&self, owner: &str, name: &str) -> bool;
    /// A blob's bytes by its oid, if the repository has it.
    fn blob(&self, owner: &str, name: &str, oid: &str) -> Option<Vec<u8>>;
}

/// The answer to a GraphQL `POST /graphql` body.
pub fn answer(body: &[u8], source: &dyn BlobSource) -> RecordedResponse {
    match resolve(body, source) {
        Ok(json) | Err(json) => RecordedResponse {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json; charset=utf-8".into()),
                ("x-ratelimit-limit".into(), "5000".into()),
                ("x-ratelimit-remaining".into(), "4999".into()),
                ("x-ratelimit-reset".into(), "1795000000".into()),
                ("x-ratelimit-resource".into(), "graphql".into()),
            ],
            body: Some(json),
            body_text: None,
        },
    }
}

/// An error without `data` (the query was not executed).
fn invalid(message: impl Into<String>) -> Json {
    json!({ "errors": [{ "message": message.into() }] })
}

fn resolve(body: &[u8], source: &dyn BlobSource) -> Result<Json, Json> {
    let request: Json = serde_json::from_slice(body).map_err(|_| invalid("Problems parsing JSON"))?;
    let query = request
        .get("query")
        .and_then(Json::as_str)
        .ok_or_else(|| invalid("A query attribute must be specified and must be a string."))?;
    let empty = Map::new();
    let variables = request.get("variables").and_then(Json::as_object).unwrap_or(&empty);
    let document = parsed(query)?;
    let selection = match document.definitions.as_slice() {
        [Definition::Operation(OperationDefinition::Query(query))] => &query.selection_set,
        [Definition::Operation(OperationDefinition::SelectionSet(set))] => set,
        _ => return Err(invalid("this view answers one query operation")),
    };
    let argument = |arguments: &[(String, Value<'_, String>)], name: &str| -> Result<String, Json> {
        let value = arguments
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| invalid(format!("Argument '{name}' is required")))?;
        match value {
            Value::String(s) => Ok(s.clone()),
            Value::Variable(v) => variables
                .get(v)
                .and_then(Json::as_str)
                .map(str::to_owned)
                .ok_or_else(|| invalid(format!("Variable ${v} of type String! was provided invalid value"))),
            _ => Err(invalid(format!("Argument '{name}' has an invalid value"))),
        }
    };
    let mut data = Map::new();
    let mut errors = Vec::new();
    for item in &selection.items {
        let Selection::Field(field) = item else {
            return Err(invalid("fragments are not supported by this view"));
        };
        if field.name != "repository" {
            return Err(invalid(format!("Field '{}' doesn't exist on type 'Query'", field.name)));
        }
        let alias = field.alias.clone().unwrap_or_else(|| field.name.clone());
        let (owner, name) = (
            argument(&field.arguments, "owner")?,
            argument(&field.arguments, "name")?,
        );
        if !source.has_repository(&owner, &name) {
            data.insert(alias.clone(), Json::Null);
            errors.push(json!({
                "type": "NOT_FOUND",
                "path": [alias],
                "locations": [{ "line": field.position.line, "column": field.position.column }],
                "message": format!("Could not resolve to a Repository with the name '{owner}/{name}'."),
            }));
            continue;
        }
        let mut repository = Map::new();
        for item in &field.selection_set.items {
            let Selection::Field(object) = item else {
                return Err(invalid("fragments are not supported on Repository by this view"));
            };
            if object.name != "object" {
                return Err(invalid(format!(
                    "Field '{}' is not supported on type 'Repository' by this view",
                    object.name
                )));
            }
            let alias = object.alias.clone().unwrap_or_else(|| object.name.clone());
            let oid = argument(&object.arguments, "oid")?;
            let value = match source.blob(&owner, &name, &oid) {
                Some(bytes) => Json::Object(blob_fields(&object.selection_set, &oid, &bytes)?),
                None => Json::Null,
            };
            repository.insert(alias, value);
        }
        data.insert(alias, Json::Object(repository));
    }
    let mut out = Map::new();
    out.insert("data".into(), Json::Object(data));
    if !errors.is_empty() {
        out.insert("errors".into(), Json::Array(errors));
    }
    Ok(Json::Object(out))
}

/// The parsed query, from a small cache by its text: the connector sends the
/// same query text for every batch of the same shape (only the variables
/// differ), and parsing it is most of the cost of an answer.
fn parsed(query: &str) -> Result<Arc<Document<'static, String>>, Json> {
    type Parsed = HashMap<String, Arc<Document<'static, String>>>;
    const KEPT: usize = 64;
    static PARSED: LazyLock<Mutex<Parsed>> = LazyLock::new(Mutex::default);
    if let Some(document) = PARSED.lock().ok().and_then(|cache| cache.get(query).cloned()) {
        return Ok(document);
    }
    let document = graphql_parser::parse_query::<String>(query)
        .map_err(|e| invalid(format!("Parse error: {e}")))?
        .into_static();
    let document = Arc::new(document);
    if let Ok(mut cache) = PARSED.lock() {
        if cache.len() >= KEPT {
            cache.clear();
        }
        cache.insert(query.to_owned(), document.clone());
    }
    Ok(document)
}

/// The fields of a `... on Blob { ... }` selection. GitHub's `text` is null
/// for a binary blob (here: not UTF-8, or holding a NUL byte).
fn blob_fields(selection: &SelectionSet<'_, String>, oid: &str, bytes: &[u8]) -> Result<Map<String, Json>, Json> {
    let text = std::str::from_utf8(bytes).ok().filter(|t| !t.contains('\0'));
    let mut out = Map::new();
    for item in &selection.items {
        let fields = match item {
            Selection::InlineFragment(fragment) => match &fragment.type_condition {
                Some(graphql_parser::query::TypeCondition::On(on)) if on == "Blob" => &fragment.selection_set,
                // A fragment on another type selects nothing on a blob.
                _ => continue,
            },
            Selection::Field(field) if field.name == "__typename" => {
                out.insert(field.alias.clone().unwrap_or_else(|| field.name.clone()), json!("Blob"));
                continue;
            }
            _ => return Err(invalid("select blob fields with `... on Blob { ... }`")),
        };
        for item in &fields.items {
            let Selection::Field(field) = item else {
                return Err(invalid("fragments are not supported on Blob by this view"));
            };
            let value = match field.name.as_str() {
                "text" => text.map_or(Json::Null, |t| json!(t)),
                "isBinary" => json!(text.is_none()),
                "isTruncated" => json!(false),
                "byteSize" => json!(bytes.len()),
                "oid" => json!(oid),
                other => return Err(invalid(format!("Field '{other}' doesn't exist on type 'Blob'"))),
            };
            out.insert(field.alias.clone().unwrap_or_else(|| field.name.clone()), value);
        }
    }
    Ok(out)
}

/// Fixture mode's view: repositories and blobs are the recorded REST
/// exchanges `GET /repos/{owner}/{name}` and `GET /repos/{owner}/{name}/git/blobs/{oid}`,
/// matched with the GraphQL request's headers (an exchange that requires a
/// credential requires it of the GraphQL read too).
struct Recorded<'a> {
    fixtures: &'a FixtureSet,
    headers: &'a http::HeaderMap,
}

impl Recorded<'_> {
    fn get(&self, path: &str) -> Option<Json> {
        let uri: http::Uri = path.parse().ok()?;
        let exchange = self.fixtures.find(&http::Method::GET, &uri, self.headers, b"")?;
        if exchange.response.status != 200 {
            return None;
        }
        serde_json::from_slice(&exchange.response.body_bytes("")).ok()
    }
}

impl BlobSource for Recorded<'_> {
    fn has_repository(&self, owner: &str, name: &str) -> bool {
        self.get(&format!("/repos/{owner}/{name}")).is_some()
    }

    fn blob(&self, owner: &str, name: &str, oid: &str) -> Option<Vec<u8>> {
        use base64::Engine as _;
        let blob = self.get(&format!("/repos/{owner}/{name}/git/blobs/{oid}"))?;
        let content = blob.get("content")?.as_str()?;
        match blob.get("encoding")?.as_str()? {
            "base64" => {
                let compact: String = content.chars().filter(|c| !c.is_whitespace()).collect();
                base64::engine::general_purpose::STANDARD.decode(compact).ok()
            }
            _ => Some(content.as_bytes().to_vec()),
        }
    }
}

/// The synthesizer of the GitHub replay server in fixture mode: answers
/// `POST /graphql` from the recorded exchanges it serves.
#[derive(Debug, Default)]
pub struct FixtureGraphql;

impl FixtureGraphql {
    /// As the synthesizer of a replay server.
    pub fn shared() -> Arc<dyn Synthesizer> {
        Arc::new(Self)
    }
}

impl Synthesizer for FixtureGraphql {
    fn respond(
        &self,
        fixtures: &FixtureSet,
        method: &http::Method,
        uri: &http::Uri,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> Option<RecordedResponse> {
        (method == http::Method::POST && uri.path() == "/graphql")
            .then(|| answer(body, &Recorded { fixtures, headers }))
    }
}
