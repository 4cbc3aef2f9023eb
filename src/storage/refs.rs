//! What a stored manifest references, read leniently. Unlike
//! `crate::manifest::Manifest::parse` (which validates what a client pushes),
//! this must never under-report: anything that names a digest keeps it,
//! including foreign layers and the layers of schema 1 manifests that a
//! data directory taken over from registry:2 may hold.

use crate::digest::Digest;
use serde_json::Value;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct References {
    /// Configs and layers.
    pub blobs: Vec<Digest>,
    /// Those of `blobs` that are layers with `urls`: a registry need not
    /// hold them (kept by collection if it does).
    pub foreign: Vec<Digest>,
    /// Manifests an index or list names.
    pub children: Vec<Digest>,
    pub subject: Option<Digest>,
}

/// The references in `bytes`; `None` if they are not a JSON object at all.
pub fn references(bytes: &[u8]) -> Option<References> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v.as_object()?;
    let digest = |d: &Value, key: &str| d.get(key)?.as_str()?.parse::<Digest>().ok();
    let each = |key: &str, field: &str| -> Vec<Digest> {
        v.get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|d| digest(d, field)).collect())
            .unwrap_or_default()
    };
    let mut r = References {
        blobs: v
            .get("config")
            .and_then(|c| digest(c, "digest"))
            .into_iter()
            .collect(),
        foreign: v
            .get("layers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter(|l| {
                        l.get("urls")
                            .and_then(Value::as_array)
                            .is_some_and(|u| !u.is_empty())
                    })
                    .filter_map(|l| digest(l, "digest"))
                    .collect()
            })
            .unwrap_or_default(),
        children: each("manifests", "digest"),
        subject: v.get("subject").and_then(|s| digest(s, "digest")),
    };
    r.blobs.extend(each("layers", "digest"));
    r.blobs.extend(each("fsLayers", "blobSum"));
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn image_index_subject_and_schema1() {
        let image = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{}"}},"layers":[{{"digest":"{}","urls":["http://x"]}}],"subject":{{"digest":"{}"}}}}"#,
            d('a'),
            d('b'),
            d('c')
        );
        let r = references(image.as_bytes()).unwrap();
        assert_eq!(
            r.blobs,
            vec![d('a').parse().unwrap(), d('b').parse().unwrap()]
        );
        assert_eq!(r.subject, Some(d('c').parse().unwrap()));
        assert_eq!(r.foreign, vec![d('b').parse().unwrap()]);
        let index = format!(
            r#"{{"manifests":[{{"digest":"{}"}},{{"digest":"bad"}}]}}"#,
            d('e')
        );
        assert_eq!(
            references(index.as_bytes()).unwrap().children,
            vec![d('e').parse().unwrap()]
        );
        let v1 = format!(
            r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"{}"}}]}}"#,
            d('f')
        );
        assert_eq!(
            references(v1.as_bytes()).unwrap().blobs,
            vec![d('f').parse().unwrap()]
        );
        assert!(references(b"[1]").is_none());
        assert!(references(b"not json").is_none());
    }
}
