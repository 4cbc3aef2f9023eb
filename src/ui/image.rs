//! What the pages show of a manifest: read leniently from the stored bytes
//! (they were validated on push; anything odd shows as absent, never as an
//! error) together with the image configuration it names.

use crate::api::Api;
use crate::api::error::ApiError;
use crate::digest::Digest;
use crate::manifest::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::names::RepoName;
use crate::storage::manifests::Reference;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::SystemTime;
use tokio::io::AsyncReadExt;

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: Option<String>,
    pub digest: String,
    pub size: u64,
    pub platform: Option<Platform>,
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn label(&self) -> String {
        match &self.variant {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ManifestBody {
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

/// The image configuration's fields worth showing.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    pub created: Option<String>,
    pub os: Option<String>,
    pub architecture: Option<String>,
    pub variant: Option<String>,
    pub author: Option<String>,
    pub config: RunConfig,
    pub history: Vec<History>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RunConfig {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub struct History {
    pub created: Option<String>,
    pub created_by: Option<String>,
    pub comment: Option<String>,
    pub empty_layer: bool,
}

/// A manifest as shown: its identity, parsed body and, for an image, its config.
pub struct Image {
    pub digest: Digest,
    pub media_type: String,
    pub manifest_size: u64,
    pub body: ManifestBody,
    pub config: Option<ImageConfig>,
    /// For an index, each entry's own manifest and config, in order (`None`
    /// where unreadable); empty for anything else.
    pub children: Vec<Option<Image>>,
}

const IMAGE_CONFIGS: [&str; 2] = [
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.oci.image.config.v1+json",
];

/// Config blobs larger than this are not read for display.
const CONFIG_MAX: u64 = 4 << 20;

impl Image {
    /// Reads the manifest `r` names and, for an image, its configuration;
    /// for an index, each of its entries too (one level: an index of
    /// indexes is unusual enough not to be worth the reads).
    pub async fn load(api: &Api, repo: &RepoName, r: &Reference) -> Result<Image, ApiError> {
        let mut img = Image::load_one(api, repo, r).await?;
        if img.is_index() {
            for entry in &img.body.manifests {
                let child = match entry.digest.parse() {
                    Ok(d) => Image::load_one(api, repo, &Reference::Digest(d)).await.ok(),
                    Err(_) => None,
                };
                img.children.push(child);
            }
        }
        Ok(img)
    }

    async fn load_one(api: &Api, repo: &RepoName, r: &Reference) -> Result<Image, ApiError> {
        let m = api.registry.get_manifest(repo, r).await?;
        let body: ManifestBody = serde_json::from_slice(&m.bytes).unwrap_or_default();
        // Artifacts (signatures, SBOMs) have some other config, often `{}`.
        let config = match &body.config {
            Some(c) if c.media_type.as_deref().is_some_and(is_image_config) => {
                read_config(api, repo, &c.digest).await
            }
            _ => None,
        };
        Ok(Image {
            digest: m.digest,
            media_type: m.media_type,
            manifest_size: m.bytes.len() as u64,
            body,
            config,
            children: vec![],
        })
    }

    pub fn is_index(&self) -> bool {
        is_index(&self.media_type)
    }

    /// Manifest, config and layers together; for an index, the sum of its
    /// platform images' own sizes (what pulling every platform costs), which
    /// is unknown if none of them could be read.
    pub fn size(&self) -> Option<u64> {
        if !self.is_index() {
            let config = self.body.config.as_ref().map_or(0, |c| c.size);
            let layers: u64 = self.body.layers.iter().map(|l| l.size).sum();
            return Some(self.manifest_size + config + layers);
        }
        let sizes: Vec<u64> = self.platform_images().filter_map(Image::size).collect();
        (!sizes.is_empty()).then(|| sizes.iter().sum())
    }

    /// The readable entries of an index that are images, leaving out
    /// attestations and other artifacts (buildx adds one per platform),
    /// which are not something one runs.
    fn platform_images(&self) -> impl Iterator<Item = &Image> {
        self.children.iter().flatten().filter(|c| c.is_image())
    }

    /// Whether this is an image: its config is an image configuration.
    fn is_image(&self) -> bool {
        self.body
            .config
            .as_ref()
            .is_some_and(|c| c.media_type.as_deref().is_some_and(is_image_config))
    }

    /// `os/arch` of an image, or of each entry of an index.
    pub fn platforms(&self) -> Vec<String> {
        if self.is_index() {
            return self
                .body
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref().map(Platform::label))
                .collect();
        }
        let Some(c) = &self.config else {
            return vec![];
        };
        match (&c.os, &c.architecture) {
            (Some(os), Some(arch)) => vec![
                Platform {
                    os: os.clone(),
                    architecture: arch.clone(),
                    variant: c.variant.clone(),
                }
                .label(),
            ],
            _ => vec![],
        }
    }

    /// When the image was built, from its config; for an index, when its
    /// newest platform image was (platforms are often built apart, and the
    /// newest one says how fresh the tag is). Pages label which it is.
    pub fn created(&self) -> Option<&str> {
        if !self.is_index() {
            return self.config.as_ref()?.created.as_deref();
        }
        self.platform_images()
            .filter_map(Image::created)
            .max_by_key(|c| crate::timefmt::parse_rfc3339(c))
    }
}

fn is_image_config(media_type: &str) -> bool {
    IMAGE_CONFIGS.contains(&media_type)
}

fn is_index(media_type: &str) -> bool {
    matches!(media_type, DOCKER_LIST | OCI_INDEX)
}

/// A short name for a manifest media type.
pub fn kind(media_type: &str) -> &str {
    match media_type {
        DOCKER_MANIFEST => "Docker image",
        DOCKER_LIST => "Docker manifest list",
        OCI_MANIFEST => "OCI image",
        OCI_INDEX => "OCI index",
        other => other,
    }
}

/// A timestamp as `2024-01-31 12:00:00 UTC` when it is RFC 3339, else as given.
pub fn when(t: &str) -> String {
    crate::timefmt::parse_rfc3339(t).map_or_else(|| t.to_string(), when_time)
}

/// A time the registry itself recorded, written as [`when`] writes one.
pub fn when_time(t: SystemTime) -> String {
    crate::timefmt::rfc3339(t)
        .replace('T', " ")
        .replace('Z', " UTC")
}

/// The config blob, if this repository has it and it is a sane size and shape.
async fn read_config(api: &Api, repo: &RepoName, digest: &str) -> Option<ImageConfig> {
    let d: Digest = digest.parse().ok()?;
    let size = api.registry.blob_size(repo, &d).await.ok()?;
    if size > CONFIG_MAX {
        return None;
    }
    let mut reader = api.registry.open_blob(&d, 0).await.ok()?;
    let mut bytes = Vec::with_capacity(size as usize);
    (&mut reader)
        .take(CONFIG_MAX)
        .read_to_end(&mut bytes)
        .await
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
