//! `n`/`last` pagination shared by `tags/list` and `_catalog`, with the
//! `Link` header that points at the next page.

use super::error::{ApiError, Code};
use super::query_param;
use hyper::http::request::Parts;

pub struct Page {
    pub n: usize,
    pub last: Option<String>,
}

/// What a request without `n` gets.
pub enum WithoutN {
    /// A page of the largest size (`_catalog`, as distribution pages it).
    FirstPage,
    /// The whole list (`tags/list`: distribution 2.8 and 3 both answer with
    /// every tag, and clients that never follow `Link` rely on it).
    Everything,
}

impl Page {
    /// Reads `n` and `last`; `n` is capped at `max`.
    pub fn from_request(req: &Parts, max: usize, without_n: WithoutN) -> Result<Page, ApiError> {
        let absent = match without_n {
            WithoutN::FirstPage => max,
            WithoutN::Everything => usize::MAX,
        };
        let n = match query_param(req, "n") {
            None => absent,
            Some(v) if v.is_empty() => absent,
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| {
                    ApiError::new(
                        Code::PaginationNumberInvalid,
                        format!("n must be a non-negative integer, got {v:?}"),
                    )
                })?
                .min(max),
        };
        let last = query_param(req, "last").filter(|l| !l.is_empty());
        Ok(Page { n, last })
    }

    /// How many items to fetch: one more than a page, to learn whether a next page exists.
    pub fn fetch(&self) -> usize {
        if self.n == 0 {
            0
        } else {
            self.n.saturating_add(1)
        }
    }

    /// Cuts `items` (one more than a page, if there is more) to the page, and
    /// returns the `Link` header for the next page of `url` when there is one.
    pub fn finish(&self, url: &str, items: &mut Vec<String>) -> Option<String> {
        if items.len() <= self.n {
            return None;
        }
        items.truncate(self.n);
        let last = items.last()?;
        Some(format!("<{url}?last={last}&n={}>; rel=\"next\"", self.n))
    }
}
