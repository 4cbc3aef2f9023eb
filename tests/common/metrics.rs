//! Scraping the debug listener's Prometheus text.

use super::req_to;
use std::collections::HashMap;
use std::net::SocketAddr;

/// One scrape: every sample by its series (`name{labels}`).
pub fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let r = req_to(addr, "GET", "/metrics").send();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("Content-Type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = r.text();
    let typed = types(&text);
    let mut out = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let family = family(series, &typed);
        assert!(typed.contains_key(family), "{series} has no TYPE line");
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{series} has no HELP line"
        );
        assert!(
            out.insert(series.to_string(), value).is_none(),
            "duplicate {series}"
        );
    }
    out
}

pub fn get(m: &HashMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

/// Each `# TYPE name kind` line: kind by name.
fn types(text: &str) -> HashMap<&str, &str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
        .collect()
}

/// The metric family a sample belongs to: its name, less the suffix a
/// histogram adds to each of its series.
fn family<'a>(series: &'a str, typed: &HashMap<&str, &str>) -> &'a str {
    let name = series.split('{').next().unwrap_or(series);
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find(|base| typed.get(base) == Some(&"histogram"))
        .unwrap_or(name)
}
