//! HTML escaping and the few encodings pages need. Repository names, tags,
//! labels, environment values and history lines all come from whoever pushed
//! the image, so every value put into a page goes through [`esc`] (text and
//! quoted attribute values alike) or [`query`] (inside a URL's query).

use std::fmt;

/// Text made safe for an element's content or a double- or single-quoted
/// attribute value.
pub struct Esc<'a>(pub &'a str);

/// Escapes `s` when formatted.
pub fn esc(s: &str) -> Esc<'_> {
    Esc(s)
}

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// Percent-encodes `s` for a query string value: only unreserved characters stay.
pub fn query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A byte count for people: `1.5 MB` (decimal units, as `docker images` shows them).
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A size that may be unknown: `—` then.
pub fn maybe_size(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "—".to_string(), size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        let hostile = r#"<script>alert("x")</script>' onmouseover='y' &amp;"#;
        let out = esc(hostile).to_string();
        assert_eq!(
            out,
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; onmouseover=&#39;y&#39; &amp;amp;"
        );
        assert!(!out.contains(['<', '>', '"', '\'']));
        assert_eq!(esc("plain/name-1.0").to_string(), "plain/name-1.0");
        assert_eq!(esc("").to_string(), "");
        assert_eq!(esc("é<ü").to_string(), "é&lt;ü");
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(query("team/app"), "team%2Fapp");
        assert_eq!(query("a b&c=d\"<"), "a%20b%26c%3Dd%22%3C");
        assert_eq!(query("x-1.0_~"), "x-1.0_~");
        assert_eq!(query("é"), "%C3%A9");
    }

    #[test]
    fn sizes() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(1500), "1.5 kB");
        assert_eq!(size(5_242_880), "5.2 MB");
        assert_eq!(maybe_size(None), "—");
    }
}
