//! The frame every page shares: head, header with breadcrumbs and the user,
//! and the security headers every UI response carries.

use super::assets::{SCRIPT, STYLE};
use super::html::esc;
use crate::api::body::{self, Body};
use hyper::{Response, StatusCode};

/// No inline script or style at all, nothing from elsewhere, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A link in the breadcrumb trail: where it goes and its (unescaped) label.
pub struct Crumb<'a>(pub &'a str, pub &'a str);

/// A whole HTML document around `main` (already-escaped markup).
pub fn document(title: &str, user: Option<&str>, crumbs: &[Crumb], main: &str) -> String {
    let mut trail = String::new();
    for Crumb(href, label) in crumbs {
        trail.push_str(&format!(
            "<li><a href=\"{}\">{}</a></li>",
            esc(href),
            esc(label)
        ));
    }
    let who = user.map_or(String::new(), |u| {
        format!("<span class=\"user\" title=\"Signed in\">{}</span>", esc(u))
    });
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title} · private-registry</title>\
<link rel=\"stylesheet\" href=\"{css}\"><script src=\"{js}\" defer></script></head>\
<body><header class=\"top\"><a class=\"brand\" href=\"/ui/\">private-registry</a>{who}</header>\
<nav class=\"crumbs\" aria-label=\"Breadcrumb\"><ol><li><a href=\"/ui/\">Repositories</a></li>{trail}</ol></nav>\
<main>{main}</main></body></html>\n",
        title = esc(title),
        css = STYLE.url(),
        js = SCRIPT.url(),
    )
}

/// An HTML response with the UI's security headers.
pub fn html(status: StatusCode, doc: String) -> Response<Body> {
    secure(
        Response::builder()
            .status(status)
            .header("Content-Type", "text/html; charset=utf-8")
            .header("Content-Length", doc.len())
            // Pages show what one user may see: never from a shared cache.
            .header("Cache-Control", "private, no-cache"),
    )
    .body(body::full(doc))
    .expect("valid response")
}

/// Adds the headers that keep pages from being framed, sniffed or scripted.
pub fn secure(b: hyper::http::response::Builder) -> hyper::http::response::Builder {
    b.header("Content-Security-Policy", CSP)
        .header("X-Frame-Options", "DENY")
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "same-origin")
}

/// A page that only says what went wrong.
pub fn error_page(status: StatusCode, user: Option<&str>, message: &str) -> Response<Body> {
    let title = status.canonical_reason().unwrap_or("Error");
    // Storage and API messages are lower-case phrases; here they stand alone.
    let mut chars = message.chars();
    let message: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    let main = format!(
        "<h1>{}</h1><p class=\"error\">{}</p><p><a href=\"/ui/\">Back to the repositories</a></p>",
        esc(title),
        esc(&message)
    );
    html(status, document(title, user, &[], &main))
}

/// What a browser shows under the login challenge when the login is
/// cancelled or refused (`retry`: credentials were sent and not accepted).
/// It stands alone, without the stylesheet or script: those are behind the
/// same login, and fetching them would only raise the dialog again.
pub fn login_prompt(retry: bool) -> String {
    let why = if retry {
        "That user name and password were not accepted."
    } else {
        "This registry needs a login."
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>Log in · private-registry</title></head><body><main>\
<h1>Log in</h1><p>{why}</p>\
<p>Log in with the user name and password you use for <code>docker login</code> to this \
registry; your browser asks for them. If you cancelled that, reload this page to be asked again.</p>\
<p>An administrator adds users with <code>private-registry htpasswd add NAME</code>.</p>\
</main></body></html>\n"
    )
}
