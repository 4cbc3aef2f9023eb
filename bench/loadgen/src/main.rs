//! Load generator for `bench/run`. Each command prints one line of JSON.
//!
//!   rate       --path P [--method M] [--conns C] [--secs S] [--header K:V]
//!   push-blobs --repo R [--count N] [--size B] [--conns C]
//!   push-file  --repo R --file F --digest D [--chunk B]
//!   pull       --path P [--conns C]
//!   tags       --repo R [--count N] [--conns C]
//!   repos      --prefix X [--count N] [--conns C]
//!   walk       --path P
//!
//! Common: --base http(s)://host:port [--ca FILE] [--user U:P].

mod bulk;
mod conn;
mod work;

use std::collections::HashMap;

pub struct Args(HashMap<String, Vec<String>>);

impl Args {
    fn parse(v: &[String]) -> Args {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        let mut i = 0;
        while i < v.len() {
            let k = v[i]
                .strip_prefix("--")
                .unwrap_or_else(|| panic!("unexpected {}", v[i]));
            let val = v
                .get(i + 1)
                .cloned()
                .unwrap_or_else(|| panic!("--{k} needs a value"));
            m.entry(k.to_string()).or_default().push(val);
            i += 2;
        }
        Args(m)
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(|v| v.last()).map(String::as_str)
    }
    pub fn req(&self, k: &str) -> &str {
        self.get(k).unwrap_or_else(|| panic!("--{k} is required"))
    }
    pub fn num(&self, k: &str, default: u64) -> u64 {
        self.get(k)
            .map_or(default, |v| v.parse().expect("a number"))
    }
    pub fn all(&self, k: &str) -> &[String] {
        self.0.get(k).map_or(&[], |v| v.as_slice())
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = argv.split_first() else {
        eprintln!("usage: loadgen COMMAND --base URL [options] (see src/main.rs)");
        std::process::exit(2);
    };
    let args = Args::parse(rest);
    let target = conn::Target::new(args.req("base"), args.get("ca"), args.get("user"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let out = rt.block_on(async {
        match cmd.as_str() {
            "rate" => work::rate(&target, &args).await,
            "push-blobs" => work::push_blobs(&target, &args).await,
            "push-file" => work::push_file(&target, &args).await,
            "pull" => work::pull(&target, &args).await,
            "tags" => work::tags(&target, &args).await,
            "repos" => work::repos(&target, &args).await,
            "walk" => work::walk(&target, &args).await,
            other => Err(format!("unknown command {other}")),
        }
    });
    match out {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("loadgen {cmd}: {e}");
            std::process::exit(1);
        }
    }
}
