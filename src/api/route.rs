//! Maps a request path to the resource it names. Repository names contain
//! slashes, so paths are read from the right: the last segments say what is
//! asked for, everything before them is the name.

use crate::names::RepoName;

#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Base,
    /// `/ca.crt`: the CA certificate clients should trust.
    CaCertificate,
    Catalog,
    Tags(RepoName),
    Manifest(RepoName, String),
    Blob(RepoName, String),
    Uploads(RepoName),
    Upload(RepoName, String),
    Referrers(RepoName, String),
    /// `/v1/search`: Docker's search API.
    Search,
    /// `/v2/_ext/usage[/<name>]`: storage usage, ours.
    Usage(Option<RepoName>),
}

#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    NameInvalid(String),
}

impl Route {
    /// The kind of resource, for metrics: bounded, never a repository name.
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Base => "base",
            Route::CaCertificate => "ca_certificate",
            Route::Catalog => "catalog",
            Route::Tags(_) => "tags",
            Route::Manifest(..) => "manifest",
            Route::Blob(..) => "blob",
            Route::Uploads(_) | Route::Upload(..) => "blob_upload",
            Route::Referrers(..) => "referrers",
            Route::Search => "search",
            Route::Usage(_) => "usage",
        }
    }

    /// The repository a request to this route may change.
    pub fn repository(&self) -> Option<&RepoName> {
        match self {
            Route::Manifest(r, _) | Route::Blob(r, _) | Route::Uploads(r) | Route::Upload(r, _) => {
                Some(r)
            }
            _ => None,
        }
    }
}

pub fn parse(path: &str) -> Result<Route, RouteError> {
    if path == "/ca.crt" {
        return Ok(Route::CaCertificate);
    }
    if path == "/v1/search" {
        return Ok(Route::Search);
    }
    if let Some(rest) = path.strip_prefix("/v2/_ext/usage") {
        return match rest.strip_prefix('/') {
            None if rest.is_empty() => Ok(Route::Usage(None)),
            Some(name) => RepoName::parse(name)
                .map(|n| Route::Usage(Some(n)))
                .ok_or_else(|| RouteError::NameInvalid(name.to_string())),
            None => Err(RouteError::NotFound),
        };
    }
    let rest = path.strip_prefix("/v2").ok_or(RouteError::NotFound)?;
    if rest.is_empty() || rest == "/" {
        return Ok(Route::Base);
    }
    let rest = rest.strip_prefix('/').ok_or(RouteError::NotFound)?;
    if rest == "_catalog" {
        return Ok(Route::Catalog);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name_of = |end: usize| -> Result<RepoName, RouteError> {
        if end == 0 {
            return Err(RouteError::NotFound);
        }
        let name = segs[..end].join("/");
        RepoName::parse(&name).ok_or(RouteError::NameInvalid(name))
    };
    let last = |k: usize| segs.get(n.wrapping_sub(k)).copied();
    match (last(3), last(2), last(1)) {
        (_, Some("tags"), Some("list")) => Ok(Route::Tags(name_of(n - 2)?)),
        (Some("blobs"), Some("uploads"), Some("")) => Ok(Route::Uploads(name_of(n - 3)?)),
        (Some("blobs"), Some("uploads"), Some(id)) => {
            Ok(Route::Upload(name_of(n - 3)?, id.to_string()))
        }
        (_, Some("manifests"), Some(r)) if !r.is_empty() => {
            Ok(Route::Manifest(name_of(n - 2)?, r.to_string()))
        }
        (_, Some("blobs"), Some("uploads")) => Ok(Route::Uploads(name_of(n - 2)?)),
        (_, Some("blobs"), Some(d)) if !d.is_empty() => {
            Ok(Route::Blob(name_of(n - 2)?, d.to_string()))
        }
        (_, Some("referrers"), Some(d)) if !d.is_empty() => {
            Ok(Route::Referrers(name_of(n - 2)?, d.to_string()))
        }
        _ => Err(RouteError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> RepoName {
        RepoName::parse(s).unwrap()
    }

    #[test]
    fn routes() {
        assert_eq!(parse("/v2/"), Ok(Route::Base));
        assert_eq!(parse("/ca.crt"), Ok(Route::CaCertificate));
        assert_eq!(parse("/v2/_catalog"), Ok(Route::Catalog));
        assert_eq!(parse("/v1/search"), Ok(Route::Search));
        assert_eq!(parse("/v2/_ext/usage"), Ok(Route::Usage(None)));
        assert_eq!(
            parse("/v2/_ext/usage/a/b"),
            Ok(Route::Usage(Some(name("a/b"))))
        );
        assert_eq!(parse("/v2/_ext/usagex"), Err(RouteError::NotFound));
        assert_eq!(parse("/v2/a/b/tags/list"), Ok(Route::Tags(name("a/b"))));
        assert_eq!(
            parse("/v2/a/manifests/latest"),
            Ok(Route::Manifest(name("a"), "latest".into()))
        );
        assert_eq!(parse("/v2/a/blobs/uploads/"), Ok(Route::Uploads(name("a"))));
        assert_eq!(parse("/v2/a/blobs/uploads"), Ok(Route::Uploads(name("a"))));
        assert_eq!(
            parse("/v2/a/blobs/uploads/x-1"),
            Ok(Route::Upload(name("a"), "x-1".into()))
        );
        assert_eq!(
            parse("/v2/a/blobs/sha256:0"),
            Ok(Route::Blob(name("a"), "sha256:0".into()))
        );
        assert_eq!(
            parse("/v2/blobs/blobs/d"),
            Ok(Route::Blob(name("blobs"), "d".into()))
        );
        assert_eq!(
            parse("/v2/a/referrers/d"),
            Ok(Route::Referrers(name("a"), "d".into()))
        );
        assert_eq!(
            parse("/v2/../etc/manifests/x"),
            Err(RouteError::NameInvalid("../etc".into()))
        );
        assert_eq!(parse("/v2/manifests/x"), Err(RouteError::NotFound));
        assert_eq!(parse("/v3/"), Err(RouteError::NotFound));
        assert_eq!(parse("/v2/a/unknown"), Err(RouteError::NotFound));
    }
}
