//! Dependency manifests: which files are manifests, and their declared dependencies.

use connectors_proto::v1::Dependency;

/// Whether a directory of this name holds vendored or built files, whose
/// manifests are not the repository's own.
pub fn skipped_dir(name: &str) -> bool {
    matches!(name, "node_modules" | "vendor" | "target" | ".git")
}

/// The ecosystem of a manifest file name, or `None` when it is not a manifest.
pub fn ecosystem(path: &str) -> Option<&'static str> {
    if path.split('/').any(skipped_dir) {
        return None;
    }
    let file = path.rsplit('/').next().unwrap_or(path);
    match file {
        "package.json" => Some("npm"),
        "Cargo.toml" => Some("cargo"),
        "go.mod" => Some("go"),
        "requirements.txt" => Some("pip"),
        "pom.xml" => Some("maven"),
        _ => None,
    }
}

/// Parses the declared dependencies of a manifest. Lists are in a
/// deterministic order (the file's order where the format has one; sorted by
/// name within each table for JSON and TOML).
pub fn parse(ecosystem: &str, content: &str) -> Result<Vec<Dependency>, String> {
    match ecosystem {
        "npm" => parse_package_json(content),
        "cargo" => parse_cargo_toml(content),
        "go" => Ok(parse_go_mod(content)),
        "pip" => Ok(parse_requirements(content)),
        "maven" => parse_pom(content),
        other => Err(format!("unsupported ecosystem {other}")),
    }
}

fn dep(name: &str, version: &str, purl: String, scope: &str) -> Dependency {
    Dependency {
        name: name.to_owned(),
        version: version.to_owned(),
        purl,
        scope: scope.to_owned(),
    }
}

fn is_exact(version: &str) -> bool {
    !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
}

fn purl(kind: &str, name: &str, version: &str) -> String {
    if is_exact(version) {
        format!("pkg:{kind}/{name}@{version}")
    } else {
        format!("pkg:{kind}/{name}")
    }
}

fn parse_package_json(content: &str) -> Result<Vec<Dependency>, String> {
    let value: serde_json::Value = serde_json::from_str(content).map_err(|e| format!("invalid package.json: {e}"))?;
    let mut out = Vec::new();
    for (table, scope) in [
        ("dependencies", "runtime"),
        ("devDependencies", "development"),
        ("peerDependencies", "peer"),
        ("optionalDependencies", "optional"),
    ] {
        if let Some(map) = value.get(table).and_then(|v| v.as_object()) {
            // serde_json's map is ordered by key: deterministic.
            for (name, version) in map {
                let version = version.as_str().unwrap_or_default();
                let encoded = name.replace('@', "%40");
                out.push(dep(
                    name,
                    version,
                    purl("npm", &encoded, version.trim_start_matches(['^', '~', '=']).trim()),
                    scope,
                ));
            }
        }
    }
    Ok(out)
}

fn parse_cargo_toml(content: &str) -> Result<Vec<Dependency>, String> {
    let value: toml::Table = content.parse().map_err(|e| format!("invalid Cargo.toml: {e}"))?;
    let mut out = Vec::new();
    for (table, scope) in [
        ("dependencies", "runtime"),
        ("dev-dependencies", "development"),
        ("build-dependencies", "build"),
    ] {
        if let Some(map) = value.get(table).and_then(|v| v.as_table()) {
            for (name, spec) in map {
                let version = match spec {
                    toml::Value::String(v) => v.clone(),
                    toml::Value::Table(t) => t.get("version").and_then(|v| v.as_str()).unwrap_or_default().to_owned(),
                    _ => String::new(),
                };
                out.push(dep(name, &version, purl("cargo", name, &version), scope));
            }
        }
    }
    Ok(out)
}

fn parse_go_mod(content: &str) -> Vec<Dependency> {
    let mut out = Vec::new();
    let mut in_block = false;
    for raw in content.lines() {
        let line = raw.trim();
        let (line, indirect) = match line.split_once("//") {
            Some((code, comment)) => (code.trim(), comment.trim() == "indirect"),
            None => (line, false),
        };
        let spec = if in_block {
            if line == ")" {
                in_block = false;
                continue;
            }
            line
        } else if line == "require (" {
            in_block = true;
            continue;
        } else if let Some(rest) = line.strip_prefix("require ") {
            rest.trim()
        } else {
            continue;
        };
        let mut parts = spec.split_whitespace();
        if let (Some(module), Some(version)) = (parts.next(), parts.next()) {
            let scope = if indirect { "indirect" } else { "runtime" };
            out.push(dep(module, version, format!("pkg:golang/{module}@{version}"), scope));
        }
    }
    out
}

fn parse_requirements(content: &str) -> Vec<Dependency> {
    let mut out = Vec::new();
    for raw in content.lines() {
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() || line.starts_with('-') {
            continue;
        }
        let line = line.split(';').next().unwrap_or_default().trim();
        let split = line.find(['=', '<', '>', '~', '!', ' ', '[']).unwrap_or(line.len());
        let name = line[..split].trim();
        let spec = line[split..].trim();
        let spec = if spec.starts_with('[') {
            spec.split_once(']').map(|(_, rest)| rest.trim()).unwrap_or_default()
        } else {
            spec
        };
        if name.is_empty() {
            continue;
        }
        let normalized = name.to_ascii_lowercase().replace('_', "-");
        let purl = match spec.strip_prefix("==") {
            Some(exact) if is_exact(exact.trim()) => format!("pkg:pypi/{normalized}@{}", exact.trim()),
            _ => format!("pkg:pypi/{normalized}"),
        };
        out.push(dep(name, spec, purl, "runtime"));
    }
    out
}

fn parse_pom(content: &str) -> Result<Vec<Dependency>, String> {
    let doc = roxmltree::Document::parse(content).map_err(|e| format!("invalid pom.xml: {e}"))?;
    let child_text = |node: roxmltree::Node<'_, '_>, name: &str| {
        node.children()
            .find(|c| c.has_tag_name(name))
            .and_then(|c| c.text())
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    let mut out = Vec::new();
    let Some(project) = doc.root().children().find(|n| n.has_tag_name("project")) else {
        return Err("invalid pom.xml: no project element".into());
    };
    // Direct <dependencies> of the project (not dependencyManagement or plugins).
    for deps in project.children().filter(|n| n.has_tag_name("dependencies")) {
        for node in deps.children().filter(|n| n.has_tag_name("dependency")) {
            let group = child_text(node, "groupId");
            let artifact = child_text(node, "artifactId");
            let version = child_text(node, "version");
            let scope = match child_text(node, "scope").as_str() {
                "" | "compile" => "runtime".to_owned(),
                "test" => "development".to_owned(),
                other => other.to_owned(),
            };
            let purl = if is_exact(&version) {
                format!("pkg:maven/{group}/{artifact}@{version}")
            } else {
                format!("pkg:maven/{group}/{artifact}")
            };
            out.push(dep(&format!("{group}:{artifact}"), &version, purl, &scope));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(deps: &[Dependency]) -> Vec<(String, String, String, String)> {
        deps.iter()
            .map(|d| (d.name.clone(), d.version.clone(), d.purl.clone(), d.scope.clone()))
            .collect()
    }

    fn t(a: &str, b: &str, c: &str, d: &str) -> (String, String, String, String) {
        (a.into(), b.into(), c.into(), d.into())
    }

    #[test]
    fn recognizes_manifests_by_file_name() {
        assert_eq!(ecosystem("package.json"), Some("npm"));
        assert_eq!(ecosystem("services/api/Cargo.toml"), Some("cargo"));
        assert_eq!(ecosystem("go.mod"), Some("go"));
        assert_eq!(ecosystem("ml/requirements.txt"), Some("pip"));
        assert_eq!(ecosystem("pom.xml"), Some("maven"));
        assert_eq!(ecosystem("web/node_modules/react/package.json"), None);
        assert_eq!(ecosystem("README.md"), None);
        assert_eq!(ecosystem("go.sum"), None);
    }

    #[test]
    fn parses_package_json() {
        let deps = parse(
            "npm",
            r#"{"name":"web","dependencies":{"react":"^18.2.0","@types/node":"20.1.0"},"devDependencies":{"jest":"29.7.0"}}"#,
        )
        .unwrap();
        assert_eq!(
            names(&deps),
            vec![
                t("@types/node", "20.1.0", "pkg:npm/%40types/node@20.1.0", "runtime"),
                t("react", "^18.2.0", "pkg:npm/react@18.2.0", "runtime"),
                t("jest", "29.7.0", "pkg:npm/jest@29.7.0", "development"),
            ]
        );
        assert!(parse("npm", "{not json").is_err());
    }

    #[test]
    fn parses_cargo_toml() {
        let deps = parse(
            "cargo",
            "[package]\nname='x'\n[dependencies]\nserde = { version = \"1.0.190\", features = [\"derive\"] }\ntokio = \"1\"\n[dev-dependencies]\nproptest = \"1.4.0\"\n",
        )
        .unwrap();
        assert_eq!(
            names(&deps),
            vec![
                t("serde", "1.0.190", "pkg:cargo/serde@1.0.190", "runtime"),
                t("tokio", "1", "pkg:cargo/tokio@1", "runtime"),
                t("proptest", "1.4.0", "pkg:cargo/proptest@1.4.0", "development"),
            ]
        );
    }

    #[test]
    fn parses_go_mod() {
        let deps = parse(
            "go",
            "module example.com/x\n\ngo 1.21\n\nrequire github.com/pkg/errors v0.9.1\n\nrequire (\n\tgithub.com/gin-gonic/gin v1.9.1\n\tgolang.org/x/sys v0.13.0 // indirect\n)\n",
        )
        .unwrap();
        assert_eq!(
            names(&deps),
            vec![
                t(
                    "github.com/pkg/errors",
                    "v0.9.1",
                    "pkg:golang/github.com/pkg/errors@v0.9.1",
                    "runtime"
                ),
                t(
                    "github.com/gin-gonic/gin",
                    "v1.9.1",
                    "pkg:golang/github.com/gin-gonic/gin@v1.9.1",
                    "runtime"
                ),
                t(
                    "golang.org/x/sys",
                    "v0.13.0",
                    "pkg:golang/golang.org/x/sys@v0.13.0",
                    "indirect"
                ),
            ]
        );
    }

    #[test]
    fn parses_requirements_txt() {
        let deps = parse("pip", "# comment\nDjango==4.2.7\nrequests>=2.31\n-r other.txt\nuvicorn[standard]==0.24.0 ; python_version > '3.8'\n").unwrap();
        assert_eq!(
            names(&deps),
            vec![
                t("Django", "==4.2.7", "pkg:pypi/django@4.2.7", "runtime"),
                t("requests", ">=2.31", "pkg:pypi/requests", "runtime"),
                t("uvicorn", "==0.24.0", "pkg:pypi/uvicorn@0.24.0", "runtime"),
            ]
        );
    }

    #[test]
    fn parses_pom_xml() {
        let pom = r#"<?xml version="1.0"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <dependencyManagement><dependencies><dependency><groupId>x</groupId><artifactId>managed</artifactId><version>1</version></dependency></dependencies></dependencyManagement>
  <dependencies>
    <dependency><groupId>org.springframework.boot</groupId><artifactId>spring-boot-starter-web</artifactId><version>3.1.5</version></dependency>
    <dependency><groupId>junit</groupId><artifactId>junit</artifactId><version>${junit.version}</version><scope>test</scope></dependency>
  </dependencies>
</project>"#;
        assert_eq!(
            names(&parse("maven", pom).unwrap()),
            vec![
                t(
                    "org.springframework.boot:spring-boot-starter-web",
                    "3.1.5",
                    "pkg:maven/org.springframework.boot/spring-boot-starter-web@3.1.5",
                    "runtime"
                ),
                t(
                    "junit:junit",
                    "${junit.version}",
                    "pkg:maven/junit/junit",
                    "development"
                ),
            ]
        );
        assert!(parse("maven", "<notpom/>").is_err());
    }
}
