//! One keep-alive HTTP/1.1 connection to the registry under test, plain or
//! TLS (trusting only the benchmark's CA), with basic auth on every request.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io;
use std::sync::Arc;
use tokio::net::TcpStream;

pub type Body = UnsyncBoxBody<Bytes, io::Error>;

pub trait Blocking: std::io::Read + std::io::Write + Send {}
impl<T: std::io::Read + std::io::Write + Send> Blocking for T {}

pub fn empty() -> Body {
    Empty::new().map_err(|n| match n {}).boxed_unsync()
}

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|n| match n {}).boxed_unsync()
}

/// Where to send requests, and how.
#[derive(Clone)]
pub struct Target {
    pub addr: String,
    pub host: String,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub auth: Option<String>,
}

impl Target {
    /// `base` is `http://host:port` or `https://host:port`.
    pub fn new(base: &str, ca: Option<&str>, user: Option<&str>) -> Target {
        let (scheme, rest) = base.split_once("://").expect("base URL with a scheme");
        let addr = rest.trim_end_matches('/').to_string();
        let host = addr
            .rsplit_once(':')
            .map_or(addr.as_str(), |h| h.0)
            .to_string();
        let tls = (scheme == "https").then(|| {
            let mut roots = rustls::RootCertStore::empty();
            let ca = ca.expect("--ca is needed for https");
            for c in CertificateDer::pem_file_iter(ca).expect("read CA file") {
                roots.add(c.expect("CA certificate")).expect("add CA");
            }
            let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            Arc::new(cfg)
        });
        let auth = user.map(|u| {
            use base64::Engine;
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(u)
            )
        });
        Target {
            addr,
            host,
            tls,
            auth,
        }
    }

    pub async fn connect(&self) -> io::Result<SendRequest<Body>> {
        let tcp = TcpStream::connect(&self.addr).await?;
        tcp.set_nodelay(true)?;
        match &self.tls {
            None => handshake(tcp).await,
            Some(_) => handshake(self.tls_stream(tcp).await?).await,
        }
    }

    async fn tls_stream(
        &self,
        tcp: TcpStream,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let cfg = self.tls.clone().expect("a TLS target");
        let name = ServerName::try_from(self.host.clone()).map_err(io::Error::other)?;
        tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
    }

    /// A bare blocking connection (TLS if the target is), for moving a large
    /// body as curl would, with no runtime or HTTP library in the way.
    pub fn connect_blocking(&self) -> io::Result<Box<dyn Blocking>> {
        let tcp = std::net::TcpStream::connect(&self.addr)?;
        tcp.set_nodelay(true)?;
        Ok(match &self.tls {
            None => Box::new(tcp),
            Some(cfg) => {
                let name = ServerName::try_from(self.host.clone()).map_err(io::Error::other)?;
                let conn =
                    rustls::ClientConnection::new(cfg.clone(), name).map_err(io::Error::other)?;
                Box::new(rustls::StreamOwned::new(conn, tcp))
            }
        })
    }

    /// A request with the Host and Authorization headers set.
    pub fn request(&self, method: &str, path: &str) -> hyper::http::request::Builder {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("Host", &self.addr);
        if let Some(a) = &self.auth {
            b = b.header("Authorization", a);
        }
        b
    }
}

async fn handshake<T>(io: T) -> io::Result<SendRequest<Body>>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// A connection that reconnects when the server closes it.
pub struct Client {
    pub target: Target,
    send: Option<SendRequest<Body>>,
}

impl Client {
    pub fn new(target: &Target) -> Client {
        Client {
            target: target.clone(),
            send: None,
        }
    }

    /// Sends a request and reads the whole response body, counting its bytes
    /// without keeping them.
    pub async fn send(&mut self, req: Request<Body>) -> io::Result<(Response<()>, u64)> {
        if self.send.as_ref().is_none_or(|s| s.is_closed()) {
            self.send = Some(self.target.connect().await?);
        }
        let s = self.send.as_mut().expect("connected");
        s.ready().await.map_err(io::Error::other)?;
        let resp = match s.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.send = None;
                return Err(io::Error::other(e));
            }
        };
        let (parts, mut body) = resp.into_parts();
        let mut n = 0u64;
        while let Some(f) = body.frame().await {
            if let Ok(d) = f.map_err(io::Error::other)?.into_data() {
                n += d.len() as u64;
            }
        }
        Ok((Response::from_parts(parts, ()), n))
    }

    /// Like [`Client::send`], keeping the body.
    pub async fn send_collect(&mut self, req: Request<Body>) -> io::Result<(Response<()>, Bytes)> {
        if self.send.as_ref().is_none_or(|s| s.is_closed()) {
            self.send = Some(self.target.connect().await?);
        }
        let s = self.send.as_mut().expect("connected");
        s.ready().await.map_err(io::Error::other)?;
        let resp = s.send_request(req).await.map_err(io::Error::other)?;
        let (parts, body) = resp.into_parts();
        let b = body.collect().await.map_err(io::Error::other)?.to_bytes();
        Ok((Response::from_parts(parts, ()), b))
    }
}
