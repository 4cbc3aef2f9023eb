//! Manifest parsing: just enough of Docker schema 2 and OCI image manifests
//! and indexes to know what a manifest references and how to label it. The
//! bytes themselves are stored and served untouched.

use crate::digest::Digest;
use serde::Deserialize;
use std::collections::BTreeMap;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];
/// Layers that live elsewhere (`urls`), which a registry must not require.
const FOREIGN_LAYERS: [&str; 4] = [
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<i64>,
    media_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    artifact_type: Option<String>,
    annotations: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    size: i64,
    urls: Option<Vec<String>>,
}

/// A manifest as far as the registry needs to understand it.
#[derive(Debug)]
pub struct Manifest {
    /// Blobs that must be present in the repository (config and layers).
    pub blobs: Vec<Digest>,
    /// Manifests that must be present in the repository (index children).
    pub children: Vec<Digest>,
    pub subject: Option<Digest>,
    /// `artifactType`, falling back to the config's media type, per OCI 1.1 referrers.
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ManifestError(pub String);

fn invalid(msg: impl Into<String>) -> ManifestError {
    ManifestError(msg.into())
}

impl Manifest {
    /// Parses and validates `bytes`. `content_type` is what the client said it
    /// sent; a known manifest type that disagrees with the body is refused.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
        let raw: Raw = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("not a JSON manifest: {e}")))?;
        let media_type = infer_media_type(&raw)?;
        if let Some(ct) = content_type.map(|c| c.split(';').next().unwrap_or("").trim())
            && is_manifest_type(ct)
            && ct != media_type
        {
            return Err(invalid(format!(
                "Content-Type {ct} does not match the manifest's media type {media_type}"
            )));
        }
        if raw.schema_version != Some(2) {
            return Err(invalid("schemaVersion must be 2"));
        }
        let digest = |d: &RawDescriptor| -> Result<Digest, ManifestError> {
            if d.size < 0 {
                return Err(invalid(format!(
                    "descriptor {} has a negative size",
                    d.digest
                )));
            }
            d.digest
                .parse()
                .map_err(|e| invalid(format!("descriptor digest {:?}: {e}", d.digest)))
        };
        let mut m = Manifest {
            blobs: vec![],
            children: vec![],
            subject: raw.subject.as_ref().map(digest).transpose()?,
            artifact_type: raw.artifact_type.clone(),
            annotations: raw.annotations,
        };
        if matches!(media_type, DOCKER_LIST | OCI_INDEX) {
            let list = raw
                .manifests
                .as_ref()
                .ok_or_else(|| invalid("index has no manifests array"))?;
            m.children = list.iter().map(digest).collect::<Result<_, _>>()?;
        } else {
            let config = raw
                .config
                .as_ref()
                .ok_or_else(|| invalid("image manifest has no config"))?;
            let layers = raw
                .layers
                .as_ref()
                .ok_or_else(|| invalid("image manifest has no layers array"))?;
            m.blobs.push(digest(config)?);
            for l in layers {
                let d = digest(l)?;
                let foreign = l.urls.as_ref().is_some_and(|u| !u.is_empty())
                    && FOREIGN_LAYERS.contains(&l.media_type.as_deref().unwrap_or(""));
                if !foreign {
                    m.blobs.push(d);
                }
            }
            if m.artifact_type.is_none() {
                m.artifact_type = config.media_type.clone();
            }
        }
        Ok(m)
    }
}

pub fn is_manifest_type(t: &str) -> bool {
    matches!(t, DOCKER_MANIFEST | DOCKER_LIST | OCI_MANIFEST | OCI_INDEX) || SCHEMA1.contains(&t)
}

fn infer_media_type(raw: &Raw) -> Result<&'static str, ManifestError> {
    if raw.schema_version == Some(1) {
        return Err(invalid(
            "Docker schema 1 manifests are deprecated and not accepted",
        ));
    }
    match raw.media_type.as_deref() {
        Some(DOCKER_MANIFEST) => Ok(DOCKER_MANIFEST),
        Some(DOCKER_LIST) => Ok(DOCKER_LIST),
        Some(OCI_MANIFEST) => Ok(OCI_MANIFEST),
        Some(OCI_INDEX) => Ok(OCI_INDEX),
        Some(t) if SCHEMA1.contains(&t) => Err(invalid(
            "Docker schema 1 manifests are deprecated and not accepted",
        )),
        Some(t) => Err(invalid(format!("unsupported manifest media type {t:?}"))),
        None if raw.manifests.is_some() => Ok(OCI_INDEX),
        None => Ok(OCI_MANIFEST),
    }
}

/// The media type to label stored manifest bytes with, as distribution does:
/// the manifest's own `mediaType`, or the OCI type its shape implies.
pub fn stored_media_type(bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Peek {
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
        schema_version: Option<i64>,
        signatures: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<Peek>(bytes) {
        Ok(Peek {
            media_type: Some(t),
            ..
        }) => t,
        Ok(Peek {
            schema_version: Some(1),
            signatures,
            ..
        }) => SCHEMA1[if signatures.is_some() { 1 } else { 0 }].to_string(),
        Ok(Peek {
            manifests: Some(_), ..
        }) => OCI_INDEX.to_string(),
        _ => OCI_MANIFEST.to_string(),
    }
}

/// The linux/amd64 entry of a manifest list: what distribution serves to a
/// client that asks for a tag naming a list but does not accept lists.
pub fn linux_amd64_child(bytes: &[u8]) -> Option<Digest> {
    #[derive(Deserialize)]
    struct List {
        manifests: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        digest: String,
        platform: Option<Platform>,
    }
    #[derive(Deserialize)]
    struct Platform {
        os: String,
        architecture: String,
    }
    let list: List = serde_json::from_slice(bytes).ok()?;
    list.manifests
        .into_iter()
        .find(|e| {
            e.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        })
        .and_then(|e| e.digest.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn image_manifest_references() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"x","digest":"{}","size":1}},
            "layers":[{{"mediaType":"y","digest":"{}","size":2}},
            {{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":3,"urls":["http://x"]}}]}}"#,
            d('a'),
            d('b'),
            d('c')
        );
        let m = Manifest::parse(body.as_bytes(), Some(DOCKER_MANIFEST)).unwrap();
        assert_eq!(m.blobs.len(), 2, "foreign layer is not required");
        assert!(Manifest::parse(body.as_bytes(), Some(OCI_MANIFEST)).is_err());
    }

    #[test]
    fn index_and_subject() {
        let body = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":5}}],"subject":{{"digest":"{}","size":1}}}}"#,
            d('a'),
            d('b')
        );
        let m = Manifest::parse(body.as_bytes(), None).unwrap();
        assert_eq!(m.children.len(), 1);
        assert!(m.subject.is_some());
    }

    #[test]
    fn refuses_bad_input() {
        assert!(Manifest::parse(b"not json", None).is_err());
        assert!(Manifest::parse(br#"{"schemaVersion":1,"fsLayers":[]}"#, None).is_err());
        let bad = r#"{"schemaVersion":2,"config":{"digest":"sha256:../x","size":1},"layers":[]}"#;
        assert!(Manifest::parse(bad.as_bytes(), None).is_err());
    }
}
