//! distribution's environment overrides: `REGISTRY_STORAGE_DELETE_ENABLED=true`
//! sets `storage.delete.enabled`. Each `_`-separated part names one level,
//! matched case-insensitively against keys already present; the value is
//! parsed as YAML, so `true`, `5` and `{a: b}` mean what they would in the file.

use serde_yaml_ng::{Mapping, Value};

pub const PREFIX: &str = "REGISTRY_";

/// Applies every `REGISTRY_*` variable in `vars` to `doc`; returns the keys set.
pub fn apply(doc: &mut Value, vars: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    let mut applied = vec![];
    let mut vars: Vec<_> = vars
        .into_iter()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .collect();
    // Shorter paths first so `REGISTRY_HTTP` followed by `REGISTRY_HTTP_ADDR` composes.
    vars.sort_by_key(|(k, _)| k.len());
    for (key, raw) in vars {
        let parts: Vec<String> = key[PREFIX.len()..]
            .split('_')
            .map(str::to_lowercase)
            .collect();
        if parts.iter().any(String::is_empty) {
            continue;
        }
        let value = serde_yaml_ng::from_str(&raw).unwrap_or(Value::String(raw));
        set(doc, &parts, value);
        applied.push(parts.join("."));
    }
    applied
}

fn set(node: &mut Value, parts: &[String], value: Value) {
    if !node.is_mapping() {
        *node = Value::Mapping(Mapping::new());
    }
    let map = node.as_mapping_mut().expect("just made a mapping");
    let existing = map
        .keys()
        .find(|k| {
            k.as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case(&parts[0]))
        })
        .cloned();
    let key = existing.unwrap_or_else(|| Value::String(parts[0].clone()));
    if parts.len() == 1 {
        map.insert(key, value);
    } else {
        let child = map.entry(key).or_insert(Value::Null);
        set(child, &parts[1..], value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_nested_keys() {
        let mut doc: Value = serde_yaml_ng::from_str("http:\n  Addr: ':5000'\n").unwrap();
        apply(
            &mut doc,
            [
                ("REGISTRY_HTTP_ADDR".into(), "127.0.0.1:6000".into()),
                ("REGISTRY_STORAGE_DELETE_ENABLED".into(), "true".into()),
                ("OTHER".into(), "x".into()),
            ],
        );
        assert_eq!(doc["http"]["Addr"].as_str(), Some("127.0.0.1:6000"));
        assert_eq!(doc["storage"]["delete"]["enabled"].as_bool(), Some(true));
    }
}
