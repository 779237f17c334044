//! Validation of namespaces and of label and field selectors, following the
//! Kubernetes grammar (apimachinery `labels.Parse`, `fields.ParseSelector`,
//! `validation.IsDNS1123Label`, `IsQualifiedName`, `IsValidLabelValue`), so
//! that only well-formed selectors reach the API server.

/// Longest selector accepted.
pub const MAX_SELECTOR_LEN: usize = 1024;

/// A DNS-1123 label: 1 to 63 of [a-z0-9-], alphanumeric at both ends.
pub fn is_dns1123_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

fn is_dns1123_subdomain(value: &str) -> bool {
    !value.is_empty() && value.len() <= 253 && value.split('.').all(is_dns1123_label)
}

/// A label name segment: 1 to 63 of [A-Za-z0-9._-], alphanumeric at both ends.
fn is_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && value.as_bytes()[0].is_ascii_alphanumeric()
        && value.as_bytes()[value.len() - 1].is_ascii_alphanumeric()
}

/// A label key: `[prefix/]name`, prefix a DNS-1123 subdomain.
fn is_label_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => is_dns1123_subdomain(prefix) && is_name(name),
        None => is_name(key),
    }
}

/// A label value: empty, or a name segment.
fn is_label_value(value: &str) -> bool {
    value.is_empty() || is_name(value)
}

/// Splits at commas outside parentheses.
fn split_requirements(selector: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced parenthesis".into());
                }
            }
            ',' if depth == 0 => {
                parts.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unbalanced parenthesis".into());
    }
    parts.push(&selector[start..]);
    Ok(parts)
}

fn requirement(req: &str) -> Result<(), String> {
    let req = req.trim();
    if req.is_empty() {
        return Err("empty requirement".into());
    }
    let key_check = |key: &str| {
        if is_label_key(key) {
            Ok(())
        } else {
            Err(format!("{key:?} is not a valid label key"))
        }
    };
    let value_check = |value: &str| {
        if is_label_value(value) {
            Ok(())
        } else {
            Err(format!("{value:?} is not a valid label value"))
        }
    };
    if let Some(key) = req.strip_prefix('!') {
        return key_check(key.trim());
    }
    // Set-based: key in (a,b) / key notin (a,b).
    let words: Vec<&str> = req.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let rest = words[1].trim_start();
        let (op, values) = if let Some(v) = rest.strip_prefix("notin") {
            ("notin", v)
        } else if let Some(v) = rest.strip_prefix("in") {
            ("in", v)
        } else {
            ("", rest)
        };
        if !op.is_empty() {
            key_check(words[0])?;
            let values = values.trim();
            let inner = values
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| format!("{op} needs a parenthesised list of values"))?;
            for value in inner.split(',') {
                value_check(value.trim())?;
            }
            return Ok(());
        }
    }
    for op in ["==", "!=", "=", ">", "<"] {
        if let Some((key, value)) = req.split_once(op) {
            key_check(key.trim())?;
            let value = value.trim();
            if matches!(op, ">" | "<") {
                return value
                    .parse::<i64>()
                    .map(|_| ())
                    .map_err(|_| format!("{op} needs an integer, got {value:?}"));
            }
            return value_check(value);
        }
    }
    key_check(req)
}

/// Validates a label selector (empty selects everything).
pub fn label_selector(selector: &str) -> Result<(), String> {
    if selector.len() > MAX_SELECTOR_LEN {
        return Err(format!("at most {MAX_SELECTOR_LEN} characters"));
    }
    if selector.trim().is_empty() {
        return Ok(());
    }
    for req in split_requirements(selector)? {
        requirement(req)?;
    }
    Ok(())
}

/// Validates a field selector: comma-separated `field=value`, `field==value`
/// or `field!=value` terms (empty selects everything).
pub fn field_selector(selector: &str) -> Result<(), String> {
    if selector.len() > MAX_SELECTOR_LEN {
        return Err(format!("at most {MAX_SELECTOR_LEN} characters"));
    }
    if selector.trim().is_empty() {
        return Ok(());
    }
    for term in selector.split(',') {
        let (field, value) = ["!=", "==", "="]
            .iter()
            .find_map(|op| term.split_once(op))
            .ok_or_else(|| format!("{term:?} is not field=value, field==value or field!=value"))?;
        let field = field.trim();
        if field.is_empty()
            || !field
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err(format!("{field:?} is not a field path"));
        }
        if value.contains(['=', '!', '(', ')']) || value.chars().any(char::is_control) {
            return Err(format!("{value:?} is not a valid field value"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors_of_the_kubernetes_grammar_are_accepted() {
        for ok in [
            "",
            "app=web",
            "app==web,tier!=db",
            "app.kubernetes.io/name=api",
            "environment in (production, qa)",
            "tier notin (frontend,backend)",
            "partition",
            "!canary",
            "app=web,!canary,tier in (a,b)",
            "replicas>2",
            "app=",
            // apimachinery's `labels.Parse` reads `()` as the set {""} (its
            // doc's own example of valid syntax is this selector), so the
            // API server accepts an empty list: `app in ()` selects the
            // objects whose `app` label is empty. Not refused here either.
            "x in (foo,,baz),y,z notin ()",
            "app in ()",
        ] {
            assert_eq!(label_selector(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn garbage_label_selectors_are_rejected() {
        for bad in [
            "app=web=x",
            "a b c",
            "app in (a,b",
            "app in a,b",
            ",",
            "app=-bad-",
            "Bad_Prefix!/x=y",
            "-x=y",
            "replicas>two",
            "app=web)",
            &"x".repeat(1025),
        ] {
            assert!(label_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors() {
        assert_eq!(field_selector("status.phase=Running,spec.nodeName!=node-1"), Ok(()));
        assert_eq!(field_selector("metadata.name==api-0"), Ok(()));
        assert!(field_selector("status.phase").is_err());
        assert!(field_selector("=x").is_err());
        assert!(field_selector("a b=c").is_err());
    }

    #[test]
    fn namespaces_are_dns1123_labels() {
        assert!(is_dns1123_label("kube-system"));
        assert!(is_dns1123_label("a"));
        assert!(!is_dns1123_label(""));
        assert!(!is_dns1123_label("Prod"));
        assert!(!is_dns1123_label("-x"));
        assert!(!is_dns1123_label("a.b"));
        assert!(!is_dns1123_label(&"a".repeat(64)));
    }
}
