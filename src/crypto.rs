//! The one crypto provider the whole program uses (ring; see stack-notes): TLS for the relay,
//! the broker client, the checks and certificate verification all take it from here.

use std::sync::Arc;

/// The crypto provider the whole program uses (ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
