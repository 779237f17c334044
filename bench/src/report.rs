//! The table and the JSON of the figures.

use serde_json::{Value, json};

/// One figure of the benchmark.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Stable key in the JSON.
    pub key: &'static str,
    /// What it is.
    pub name: String,
    /// The measured value.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
    /// The target, as text ("" when informational).
    pub target: String,
    /// Whether the target is met (`None` when there is none).
    pub pass: Option<bool>,
}

impl Figure {
    /// A figure without a target.
    pub fn info(key: &'static str, name: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Self {
            key,
            name: name.into(),
            value,
            unit,
            target: String::new(),
            pass: None,
        }
    }

    /// A figure that must be at least `min`.
    pub fn at_least(key: &'static str, name: impl Into<String>, value: f64, unit: &'static str, min: f64) -> Self {
        Self {
            target: format!(">= {} {unit}", fmt(min)).trim_end().to_owned(),
            pass: Some(value >= min),
            ..Self::info(key, name, value, unit)
        }
    }

    /// A figure that must be at most `max`.
    pub fn at_most(key: &'static str, name: impl Into<String>, value: f64, unit: &'static str, max: f64) -> Self {
        Self {
            target: format!("<= {} {unit}", fmt(max)).trim_end().to_owned(),
            pass: Some(value <= max),
            ..Self::info(key, name, value, unit)
        }
    }

    /// A figure that must be below `max`.
    pub fn below(key: &'static str, name: impl Into<String>, value: f64, unit: &'static str, max: f64) -> Self {
        Self {
            target: format!("< {} {unit}", fmt(max)).trim_end().to_owned(),
            pass: Some(value < max),
            ..Self::info(key, name, value, unit)
        }
    }
}

/// A number as the table shows it.
pub fn fmt(value: f64) -> String {
    if !value.is_finite() {
        return format!("{value}");
    }
    let abs = value.abs();
    if abs >= 1000.0 {
        let rounded = value.round() as i64;
        let digits = rounded.abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if rounded < 0 { format!("-{out}") } else { out }
    } else if abs >= 100.0 {
        format!("{value:.0}")
    } else if abs >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}

/// The table, as Markdown.
pub fn table(figures: &[Figure]) -> String {
    let mut rows = vec![[
        "figure".to_owned(),
        "value".to_owned(),
        "target".to_owned(),
        "result".to_owned(),
    ]];
    for figure in figures {
        rows.push([
            figure.name.clone(),
            format!("{} {}", fmt(figure.value), figure.unit).trim().to_owned(),
            figure.target.clone(),
            match figure.pass {
                Some(true) => "pass".into(),
                Some(false) => "FAIL".into(),
                None => String::new(),
            },
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
        if n == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&format!("|-{}-|\n", rule.join("-|-")));
        }
    }
    out
}

/// The JSON document: every figure by key, and the raw measurements.
pub fn document(mode: &str, figures: &[Figure], raw: Value) -> Value {
    let mut map = serde_json::Map::new();
    for figure in figures {
        map.insert(
            figure.key.to_owned(),
            json!({
                "name": figure.name,
                "value": if figure.value.is_finite() { json!(figure.value) } else { Value::Null },
                "unit": figure.unit,
                "target": figure.target,
                "pass": figure.pass,
            }),
        );
    }
    json!({
        "mode": mode,
        "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
        "figures": map,
        "raw": raw,
    })
}
