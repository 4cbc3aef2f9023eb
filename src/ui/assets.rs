//! The UI's stylesheet and script, built into the binary. Their URLs carry a
//! hash of their content, so they can be cached for a year and a new build
//! is fetched anew.

use sha2::{Digest, Sha256};
use std::sync::OnceLock;

#[derive(Debug, PartialEq, Eq)]
pub struct Asset {
    pub name: &'static str,
    pub ext: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

pub const STYLE: Asset = Asset {
    name: "style",
    ext: "css",
    content_type: "text/css; charset=utf-8",
    body: include_str!("assets/style.css"),
};

pub const SCRIPT: Asset = Asset {
    name: "ui",
    ext: "js",
    content_type: "text/javascript; charset=utf-8",
    body: include_str!("assets/ui.js"),
};

const ALL: [&Asset; 2] = [&STYLE, &SCRIPT];

impl Asset {
    /// `/ui/assets/<name>.<hash>.<ext>`.
    pub fn url(&self) -> &'static str {
        static URLS: OnceLock<Vec<String>> = OnceLock::new();
        let urls = URLS.get_or_init(|| {
            ALL.iter()
                .map(|a| {
                    let hash = crate::digest::to_hex(&Sha256::digest(a.body.as_bytes())[..6]);
                    format!("/ui/assets/{}.{hash}.{}", a.name, a.ext)
                })
                .collect()
        });
        let i = ALL
            .iter()
            .position(|a| a.name == self.name)
            .expect("listed");
        &urls[i]
    }
}

/// The asset a path names, only under its current hash.
pub fn find(path: &str) -> Option<&'static Asset> {
    ALL.into_iter().find(|a| a.url() == path)
}
