//! The benchmark's workloads.

use crate::Args;
use crate::bulk::Bulk;
use crate::conn::{Client, Target, empty, full};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

type Out = Result<String, String>;

fn digest_of(b: &[u8]) -> String {
    let h = Sha256::digest(b);
    let mut s = String::from("sha256:");
    for x in h.iter() {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

/// Distinct pseudo-random bytes (xorshift), so every blob has its own digest.
fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Rate and latency percentiles (ms) as JSON fields.
fn summary(mut lat: Vec<u64>, errors: u64, secs: f64) -> String {
    lat.sort_unstable();
    format!(
        "\"ok\":{},\"err\":{},\"secs\":{:.3},\"rate\":{:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3}",
        lat.len(),
        errors,
        secs,
        lat.len() as f64 / secs,
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    )
}

/// The path part of a `Location` (which may be absolute), with `param` appended.
fn location_with(loc: &str, param: &str) -> String {
    let path = match loc.find("://") {
        Some(i) => &loc[i + 3 + loc[i + 3..].find('/').unwrap_or(0)..],
        None => loc,
    };
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{param}")
}

fn header(resp: &hyper::Response<()>, k: &str) -> Option<String> {
    resp.headers()
        .get(k)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn expect(resp: &hyper::Response<()>, want: u16, what: &str) -> Result<(), String> {
    if resp.status().as_u16() == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: status {} (expected {want})",
            resp.status()
        ))
    }
}

async fn start_upload(c: &mut Client, repo: &str) -> Result<String, String> {
    let req = c
        .target
        .request("POST", &format!("/v2/{repo}/blobs/uploads/"))
        .header("Content-Length", "0")
        .body(empty())
        .unwrap();
    let (resp, _) = c.send(req).await.map_err(|e| e.to_string())?;
    expect(&resp, 202, "POST upload")?;
    header(&resp, "Location").ok_or("no Location".into())
}

/// POST then PUT with the body, as Docker pushes a small blob.
async fn upload(c: &mut Client, repo: &str, data: Bytes, digest: &str) -> Result<(), String> {
    let loc = start_upload(c, repo).await?;
    let req = c
        .target
        .request("PUT", &location_with(&loc, &format!("digest={digest}")))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", data.len())
        .body(full(data))
        .unwrap();
    let (resp, _) = c.send(req).await.map_err(|e| e.to_string())?;
    expect(&resp, 201, "PUT upload")
}

/// Runs `conns` workers, each calling `f(worker, i)` for its share of `count`
/// items (or until `secs` pass when `count` is 0), timing each call.
async fn drive<F, Fut>(t: &Target, conns: u64, count: u64, secs: f64, f: F) -> (Vec<u64>, u64, f64)
where
    F: Fn(Client, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = (Client, Result<(), String>)> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = vec![];
    for _ in 0..conns {
        let (f, next, errors, t) = (f.clone(), next.clone(), errors.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let mut c = Client::new(&t);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if (count > 0 && i >= count) || (count == 0 && Instant::now() >= deadline) {
                    break;
                }
                let t0 = Instant::now();
                let (c2, r) = f(c, i).await;
                c = c2;
                match r {
                    Ok(()) => lat.push(t0.elapsed().as_micros() as u64),
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("loadgen: {e}");
                        }
                    }
                }
            }
            lat
        }));
    }
    let mut all = vec![];
    for task in tasks {
        all.extend(task.await.expect("worker"));
    }
    (
        all,
        errors.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
    )
}

pub async fn rate(t: &Target, a: &Args) -> Out {
    let method = a.get("method").unwrap_or("GET").to_string();
    let path = a.req("path").to_string();
    let want = a.num("status", 200) as u16;
    let headers: Vec<(String, String)> = a
        .all("header")
        .iter()
        .map(|h| {
            let (k, v) = h.split_once(':').expect("--header K:V");
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let headers = Arc::new(headers);
    // A short warm-up opens the connections before timing.
    let (lat, err, secs) = drive(
        t,
        a.num("conns", 64),
        0,
        a.num("secs", 5) as f64,
        move |mut c, _| {
            let (method, path, headers) = (method.clone(), path.clone(), headers.clone());
            async move {
                let mut b = c.target.request(&method, &path);
                for (k, v) in headers.iter() {
                    b = b.header(k, v);
                }
                let r = match c.send(b.body(empty()).unwrap()).await {
                    Ok((resp, _)) => expect(&resp, want, &path),
                    Err(e) => Err(e.to_string()),
                };
                (c, r)
            }
        },
    )
    .await;
    Ok(format!("{{{}}}", summary(lat, err, secs)))
}

pub async fn push_blobs(t: &Target, a: &Args) -> Out {
    let repo = a.req("repo").to_string();
    let size = a.num("size", 4096) as usize;
    let seed = a.num("seed", 1);
    let count = a.num("count", 2000);
    let blobs: Arc<Vec<(Bytes, String)>> = Arc::new(
        (0..count)
            .map(|i| {
                let b = random_bytes(seed * 1_000_003 + i, size);
                let d = digest_of(&b);
                (Bytes::from(b), d)
            })
            .collect(),
    );
    let (lat, err, secs) = drive(t, a.num("conns", 16), count, 0.0, move |mut c, i| {
        let (blobs, repo) = (blobs.clone(), repo.clone());
        async move {
            let (b, d) = &blobs[i as usize];
            let r = upload(&mut c, &repo, b.clone(), d).await;
            (c, r)
        }
    })
    .await;
    Ok(format!("{{{}}}", summary(lat, err, secs)))
}

/// One blob pushed from a file: monolithic (POST, then PUT with the body) or
/// in `--chunk`-byte PATCHes, as Docker would, on one blocking connection.
pub async fn push_file(t: &Target, a: &Args) -> Out {
    let (t, repo, file, digest) = (
        t.clone(),
        a.req("repo").to_string(),
        a.req("file").to_string(),
        a.req("digest").to_string(),
    );
    let chunk = a.num("chunk", 0);
    tokio::task::spawn_blocking(move || push_blocking(&t, &repo, &file, &digest, chunk))
        .await
        .map_err(|e| e.to_string())?
}

fn push_blocking(t: &Target, repo: &str, path: &str, digest: &str, chunk: u64) -> Out {
    let err = |e: std::io::Error| e.to_string();
    let mut file = std::fs::File::open(path).map_err(err)?;
    let len = file.metadata().map_err(err)?.len();
    let start = Instant::now();
    let mut c = Bulk::connect(t).map_err(err)?;
    let r = c
        .send("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], None)
        .map_err(err)?;
    c.expect(&r, 202, "POST upload")?;
    let mut loc = r.header("Location").ok_or("no Location")?.to_string();
    let octets = ("Content-Type", "application/octet-stream".to_string());
    let mut off = 0;
    while chunk > 0 && off < len {
        let n = chunk.min(len - off);
        let range = ("Content-Range", format!("{off}-{}", off + n - 1));
        let path = location_with(&loc, "");
        let path = path.trim_end_matches(['?', '&']);
        let r = c
            .send(
                "PATCH",
                path,
                &[octets.clone(), range],
                Some((&mut file, off, n)),
            )
            .map_err(err)?;
        c.expect(&r, 202, "PATCH")?;
        loc = r
            .header("Location")
            .ok_or("PATCH without Location")?
            .to_string();
        off += n;
    }
    let body = (off < len).then_some((&mut file, 0, len));
    let put = location_with(&loc, &format!("digest={digest}"));
    let r = c.send("PUT", &put, &[octets], body).map_err(err)?;
    c.expect(&r, 201, "PUT")?;
    let secs = start.elapsed().as_secs_f64();
    Ok(format!(
        "{{\"secs\":{secs:.3},\"mbps\":{:.1}}}",
        len as f64 / secs / 1e6
    ))
}

/// One GET of a large body (see [`Bulk`]).
/// `--conns N` pulls the blob N times at once, each over its own
/// connection: the aggregate rate of many machines pulling one image.
pub async fn pull(t: &Target, a: &Args) -> Out {
    let conns = a.num("conns", 1).max(1);
    let start = Instant::now();
    let pulls: Vec<_> = (0..conns)
        .map(|_| {
            let (t, path) = (t.clone(), a.req("path").to_string());
            tokio::task::spawn_blocking(move || pull_blocking(&t, &path))
        })
        .collect();
    let mut total = 0u64;
    for p in pulls {
        total += p.await.map_err(|e| e.to_string())??;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(format!(
        "{{\"bytes\":{},\"secs\":{secs:.3},\"mbps\":{:.1}}}",
        total / conns,
        total as f64 / secs / 1e6
    ))
}

/// One whole pull; the bytes received.
fn pull_blocking(t: &Target, path: &str) -> Result<u64, String> {
    let err = |e: std::io::Error| e.to_string();
    let mut c = Bulk::connect(t).map_err(err)?;
    let r = c.send("GET", path, &[], None).map_err(err)?;
    if r.status != 200 {
        return Err(format!("GET blob: status {}", r.status));
    }
    let len = r
        .header("Content-Length")
        .ok_or("GET blob: no Content-Length")?;
    let len: u64 = len.parse().map_err(|_| "GET blob: bad Content-Length")?;
    c.drain(len).map_err(err)
}

/// An image manifest for one small config and one small layer, pushed first.
async fn push_image(c: &mut Client, repo: &str) -> Result<Bytes, String> {
    let config = Bytes::from_static(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
    );
    let layer = Bytes::from(random_bytes(7, 4096));
    let (cd, ld) = (digest_of(&config), digest_of(&layer));
    upload(c, repo, config.clone(), &cd).await?;
    upload(c, repo, layer.clone(), &ld).await?;
    Ok(Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{cd}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{ld}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    )))
}

/// Pushes an image, then tags it `count` times (`t00000`…): the tag creation rate.
pub async fn tags(t: &Target, a: &Args) -> Out {
    let repo = a.req("repo").to_string();
    let mut c = Client::new(t);
    let manifest = push_image(&mut c, &repo).await?;
    let digest = digest_of(&manifest);
    let (lat, err, secs) = drive(
        t,
        a.num("conns", 8),
        a.num("count", 5000),
        0.0,
        move |mut c, i| {
            let (repo, manifest) = (repo.clone(), manifest.clone());
            async move {
                let req = c
                    .target
                    .request("PUT", &format!("/v2/{repo}/manifests/t{i:05}"))
                    .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                    .header("Content-Length", manifest.len())
                    .body(full(manifest))
                    .unwrap();
                let r = match c.send(req).await {
                    Ok((resp, _)) => expect(&resp, 201, "PUT manifest"),
                    Err(e) => Err(e.to_string()),
                };
                (c, r)
            }
        },
    )
    .await;
    Ok(format!(
        "{{{},\"digest\":\"{digest}\"}}",
        summary(lat, err, secs)
    ))
}

/// Makes `count` repositories (`<prefix>/r00000`…) by mounting one blob into each.
pub async fn repos(t: &Target, a: &Args) -> Out {
    let prefix = a.req("prefix").to_string();
    let src = format!("{prefix}/src");
    let mut c = Client::new(t);
    let blob = Bytes::from(random_bytes(11, 1024));
    let d = digest_of(&blob);
    upload(&mut c, &src, blob, &d).await?;
    let (lat, err, secs) = drive(
        t,
        a.num("conns", 8),
        a.num("count", 5000),
        0.0,
        move |mut c, i| {
            let (prefix, src, d) = (prefix.clone(), src.clone(), d.clone());
            async move {
                let req = c
                    .target
                    .request(
                        "POST",
                        &format!("/v2/{prefix}/r{i:05}/blobs/uploads/?mount={d}&from={src}"),
                    )
                    .header("Content-Length", "0")
                    .body(empty())
                    .unwrap();
                let r = match c.send(req).await {
                    Ok((resp, _)) => expect(&resp, 201, "mount"),
                    Err(e) => Err(e.to_string()),
                };
                (c, r)
            }
        },
    )
    .await;
    Ok(format!("{{{}}}", summary(lat, err, secs)))
}

/// Follows `Link: <…>; rel="next"` from `path`, checking the listing is sorted
/// and has no duplicates.
pub async fn walk(t: &Target, a: &Args) -> Out {
    let mut c = Client::new(t);
    let mut path = Some(a.req("path").to_string());
    let (mut pages, mut items, mut sorted, mut max_page) =
        (0u64, Vec::<String>::new(), true, 0usize);
    let start = Instant::now();
    while let Some(p) = path.take() {
        let req = t.request("GET", &p).body(empty()).unwrap();
        let (resp, body) = c.send_collect(req).await.map_err(|e| e.to_string())?;
        expect(&resp, 200, &p)?;
        pages += 1;
        let page = names(&body);
        max_page = max_page.max(page.len());
        items.extend(page);
        path = header(&resp, "Link").and_then(|l| {
            let (s, e) = (l.find('<')?, l.find('>')?);
            Some(
                location_with(&l[s + 1..e], "")
                    .trim_end_matches(['?', '&'])
                    .to_string(),
            )
        });
    }
    let secs = start.elapsed().as_secs_f64();
    for w in items.windows(2) {
        if path_order(&w[0], &w[1]) != std::cmp::Ordering::Less {
            sorted = false;
        }
    }
    let mut distinct = items.clone();
    distinct.sort();
    distinct.dedup();
    Ok(format!(
        "{{\"secs\":{secs:.6},\"pages\":{pages},\"items\":{},\"distinct\":{},\"max_page\":{max_page},\"sorted\":{sorted}}}",
        items.len(),
        distinct.len()
    ))
}

/// Distribution orders repository names component by component.
fn path_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

/// The strings of the `repositories` or `tags` array of a listing.
fn names(body: &[u8]) -> Vec<String> {
    let s = String::from_utf8_lossy(body);
    let Some(open) = s.find('[') else {
        return vec![];
    };
    let close = s.rfind(']').unwrap_or(s.len());
    s[open + 1..close]
        .split(',')
        .map(|x| x.trim().trim_matches('"').to_string())
        .filter(|x| !x.is_empty())
        .collect()
}
