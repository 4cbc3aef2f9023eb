//! Which cipher suite a connection gets.
//!
//! rustls follows the client's order by default, and most clients (OpenSSL,
//! rustls) list AES-256-GCM first. We prefer AES-128-GCM, as Go's TLS stack
//! (and so the reference registry) does on hardware with AES instructions:
//! both are strong, and AES-128 does 10 rounds to AES-256's 14, which on a
//! 1 GiB pull or push is about a quarter less time encrypting on either end.
//! A client that lists ChaCha20 first is saying it has no AES hardware, so
//! it keeps its own order and gets ChaCha20.

use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::{cipher_suite as cs, default_provider};
use rustls::server::ClientHello;
use rustls::{CipherSuite, ServerConfig, SupportedCipherSuite};
use std::sync::Arc;

/// Our order: AES-128-GCM, then AES-256-GCM, then ChaCha20-Poly1305, TLS 1.3
/// before TLS 1.2; every suite ring has (all ECDHE, forward-secret, for 1.2).
const ORDER: [SupportedCipherSuite; 9] = [
    cs::TLS13_AES_128_GCM_SHA256,
    cs::TLS13_AES_256_GCM_SHA384,
    cs::TLS13_CHACHA20_POLY1305_SHA256,
    cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// ring's provider with the suites in our order.
pub fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: ORDER.to_vec(),
        ..default_provider()
    }
}

/// The two configurations served: ours first, and the client's order.
pub struct Configs {
    server_order: Arc<ServerConfig>,
    client_order: Arc<ServerConfig>,
}

impl Configs {
    /// `config` was built with [`provider`]; its `ignore_client_order` is set
    /// here.
    pub fn new(config: ServerConfig) -> Configs {
        let mut server_order = config.clone();
        server_order.ignore_client_order = true;
        let mut client_order = config;
        client_order.ignore_client_order = false;
        Configs {
            server_order: Arc::new(server_order),
            client_order: Arc::new(client_order),
        }
    }

    /// The configuration for a connection that sent this hello.
    pub fn for_hello(&self, hello: &ClientHello<'_>) -> Arc<ServerConfig> {
        if prefers_chacha(hello.cipher_suites()) {
            self.client_order.clone()
        } else {
            self.server_order.clone()
        }
    }
}

/// Whether the client's first suite we know is ChaCha20 (skipping GREASE and
/// signalling values).
fn prefers_chacha(offered: &[CipherSuite]) -> bool {
    let known = |s: &&CipherSuite| ORDER.iter().any(|k| k.suite() == **s);
    offered.iter().find(known).is_some_and(|s| {
        matches!(
            s,
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
                | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                | CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chacha_first_clients_keep_their_order() {
        use CipherSuite as C;
        assert!(prefers_chacha(&[
            C::Unknown(0x0a0a),
            C::TLS13_CHACHA20_POLY1305_SHA256,
            C::TLS13_AES_128_GCM_SHA256,
        ]));
        assert!(!prefers_chacha(&[
            C::TLS13_AES_256_GCM_SHA384,
            C::TLS13_CHACHA20_POLY1305_SHA256,
        ]));
        assert!(!prefers_chacha(&[]));
    }

    #[test]
    fn every_suite_of_ring_is_offered() {
        assert_eq!(
            provider().cipher_suites.len(),
            default_provider().cipher_suites.len()
        );
    }
}
