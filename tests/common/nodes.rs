//! Several registry nodes on one Garage bucket behind a real HAProxy, as the
//! README's scale-out set-up has it: every node on the same bucket prefix,
//! with the same `http.secret` and htpasswd file, and HAProxy balancing
//! round robin over them in plain HTTP on 127.0.0.1 (Docker treats that as
//! an insecure registry it may use). HAProxy takes a node out when its
//! `/healthz` fails and retries a request that found no answer on another
//! node. Every node keeps its port across restarts, so HAProxy's server
//! lines stay true; each node's log (its access lines included) says which
//! node served which request.

use super::front::{Front, Kind};
use super::s3::{Cluster, Garage};
use super::{Req, Server, TempDir, basic_auth, free_port, req_to, wait_for, write_htpasswd};
use std::net::SocketAddr;
use std::path::PathBuf;

pub const USER: (&str, &str) = ("alice", "alice-pw");
pub const SECRET: &str = "scale-out-test-secret";
/// How often HAProxy asks each node's `/healthz`: short, for tests.
pub const CHECK_INTER_MS: u64 = 200;

/// One registry node: its port (fixed for its life) and config directory.
pub struct Node {
    pub addr: SocketAddr,
    pub dir: TempDir,
    yaml: String,
    env: Vec<(String, String)>,
    pub server: Option<Server>,
}

impl Node {
    fn start(&mut self) {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut s = Server::start_config(&self.dir.0, &self.yaml, &env);
        s.credentials = Some((USER.0.into(), USER.1.into()));
        self.server = Some(s);
    }

    /// The running server; panics if the node is down.
    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("node is running")
    }
}

/// A Garage cluster, `nodes` registries on its bucket, and HAProxy.
pub struct Nodes {
    pub nodes: Vec<Node>,
    pub front: Front,
    /// Where HAProxy listens.
    pub addr: SocketAddr,
    pub prefix: String,
    pub htpasswd: PathBuf,
    _dir: TempDir,
    /// Last: the registries and HAProxy stop before the store does.
    pub garage: Garage,
}

/// The HAProxy configuration for `backends`, listening on `listen`.
pub fn haproxy_config(listen: SocketAddr, backends: &[SocketAddr]) -> String {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, a)| format!("    server node{i} {a} check\n"))
        .collect();
    format!(
        "global\n    log stderr format raw local0 info\n    maxconn 500\n\
defaults\n    mode http\n    log global\n    option httplog\n\
    timeout connect 2s\n    timeout check 3s\n    timeout client 120s\n    timeout server 120s\n\
    timeout http-request 30s\n    retries 3\n    option redispatch 1\n\
    retry-on conn-failure empty-response junk-response response-timeout 502 503 504\n\
frontend registry\n    bind {listen}\n    default_backend nodes\n\
backend nodes\n    balance roundrobin\n    option httpchk GET /healthz\n    http-check expect status 200\n\
    default-server inter {CHECK_INTER_MS}ms fastinter {CHECK_INTER_MS}ms downinter {CHECK_INTER_MS}ms fall 2 rise 2\n{servers}"
    )
}

impl Nodes {
    /// `n` nodes, each with `extra` YAML appended (top-level keys) and
    /// `env` in its environment.
    pub fn start(n: usize, extra: &str, env: &[(&str, &str)]) -> Nodes {
        let garage = Garage::start();
        let dir = TempDir::new("nodes");
        let htpasswd = dir.0.join("htpasswd");
        write_htpasswd(&htpasswd, &[USER]);
        let prefix = Cluster::prefix(&dir.0);
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut nodes: Vec<Node> = (0..n)
            .map(|_| {
                let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
                let yaml = node_yaml(&garage.cluster, &prefix, addr, &htpasswd, extra);
                Node {
                    addr,
                    dir: TempDir::new("node"),
                    yaml,
                    env: env.clone(),
                    server: None,
                }
            })
            .collect();
        for node in &mut nodes {
            node.start();
        }
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let backends: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
        let front = Front::start(Kind::Haproxy, &haproxy_config(addr, &backends), &[addr]);
        let all = Nodes {
            nodes,
            front,
            addr,
            prefix,
            htpasswd,
            _dir: dir,
            garage,
        };
        all.wait_up(&(0..n).collect::<Vec<_>>());
        all
    }

    /// A request through HAProxy, as the user.
    pub fn req(&self, method: &str, path: &str) -> Req {
        req_to(self.addr, method, path).header("Authorization", &basic_auth(USER.0, USER.1))
    }

    /// HAProxy as a [`Server`] value, as the user, for the helpers that
    /// take one (`push_image`, `get_manifest`, ...). It owns no process.
    pub fn front_server(&self) -> Server {
        Server {
            child: None,
            addr: self.addr,
            listeners: vec![(self.addr, false)],
            root: PathBuf::new(),
            config: PathBuf::new(),
            log: Default::default(),
            credentials: Some((USER.0.into(), USER.1.into())),
            _dir: None,
        }
    }

    /// A request straight to node `i`, as the user.
    pub fn node_req(&self, i: usize, method: &str, path: &str) -> Req {
        self.nodes[i].server().req(method, path)
    }

    /// A server value for helpers that take one: node `i`.
    pub fn server(&self, i: usize) -> &Server {
        self.nodes[i].server()
    }

    /// The nodes whose log has a line holding every one of `needles`.
    pub fn served_by(&self, needles: &[&str]) -> Vec<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| {
                n.server.as_ref().is_some_and(|s| {
                    s.log_text()
                        .lines()
                        .any(|l| needles.iter().all(|x| l.contains(x)))
                })
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// SIGKILLs node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut s) = self.nodes[i].server.take() {
            s.signal_and_wait("KILL");
        }
    }

    /// SIGTERMs node `i` and waits for it to exit; returns its log.
    pub fn terminate(&mut self, i: usize) -> (std::process::ExitStatus, String) {
        let mut s = self.nodes[i].server.take().expect("node is running");
        let status = s.signal_and_wait("TERM");
        (status, s.log_text())
    }

    /// Starts node `i` again on its port and waits until HAProxy uses it.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].start();
        self.wait_up(&[i]);
    }

    /// Waits (up to 20 s) until HAProxy has checked nodes `which` healthy:
    /// each one's log shows a `/healthz` after it started plus `rise`
    /// checks' time.
    fn wait_up(&self, which: &[usize]) {
        for &i in which {
            let s = self.nodes[i].server();
            let ok = wait_for(20, || s.log_text().matches("/healthz").count() >= 2);
            assert!(
                ok,
                "HAProxy never checked node {i}:\n{}",
                self.front.log_text()
            );
        }
        // One more interval: the second good check has been counted.
        std::thread::sleep(std::time::Duration::from_millis(CHECK_INTER_MS * 2));
    }

    /// Node `i`'s configuration file, for the commands.
    pub fn config_path(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.0.join("config.yml")
    }
}

fn node_yaml(
    c: &Cluster,
    prefix: &str,
    addr: SocketAddr,
    htpasswd: &std::path::Path,
    extra: &str,
) -> String {
    format!(
        "version: 0.1\nlog:\n  level: info\nstorage:\n{}  redirect:\n    disable: true\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: {SECRET}\nauth:\n  htpasswd:\n    realm: scale-out\n    path: {}\n{extra}",
        c.storage_yaml_at(prefix),
        htpasswd.display()
    )
}
