//! jsonwebtoken's crypto provider for this process: signatures are verified (and JWK thumbprints
//! hashed) with `ring`; signing local development tokens and reading their keys stays on
//! RustCrypto, built only with the `local-issuer` feature.
//!
//! Why: verification runs on every request, and RustCrypto's RSA (big integers in plain Rust)
//! costs about 130 µs per RS256 token here, against a budget of 50 µs; ring's takes a fraction
//! of that. ring is no new build dependency: rustls already compiles it into every function for
//! the Redis TLS connection (plain `cc`, which cargo-lambda's zig cross-compiles, unlike the cmake
//! build of jsonwebtoken's aws-lc-rs backend). Functions never sign, so they carry no RustCrypto.

use std::sync::Once;

#[cfg(feature = "local-issuer")]
use jsonwebtoken::crypto::rust_crypto;
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::signature::{self, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::signature as ring_sig;

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key,
        rsa_pub_components_from_public_key,
        ec_pub_components_from_private_key,
        ed_pub_components_from_private_key,
        compute_digest,
    },
};

/// Makes [`PROVIDER`] jsonwebtoken's process-wide provider. Called before this crate first uses
/// jsonwebtoken; if other code got there first, verification stays correct, only slower.
pub(crate) fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if CryptoProvider::install_default(&PROVIDER).is_err() {
            tracing::warn!("jsonwebtoken's crypto provider was chosen before ours: tokens verify with RustCrypto (slower)");
        }
    });
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    use Algorithm as A;
    let params: Params = match algorithm {
        A::RS256 => Params::Rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA256),
        A::RS384 => Params::Rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA384),
        A::RS512 => Params::Rsa(&ring_sig::RSA_PKCS1_2048_8192_SHA512),
        A::PS256 => Params::Rsa(&ring_sig::RSA_PSS_2048_8192_SHA256),
        A::PS384 => Params::Rsa(&ring_sig::RSA_PSS_2048_8192_SHA384),
        A::PS512 => Params::Rsa(&ring_sig::RSA_PSS_2048_8192_SHA512),
        A::ES256 => Params::Ecdsa(&ring_sig::ECDSA_P256_SHA256_FIXED),
        A::ES384 => Params::Ecdsa(&ring_sig::ECDSA_P384_SHA384_FIXED),
        // HMAC and EdDSA: never accepted by this API's configuration.
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    let family = match params {
        Params::Rsa(_) => AlgorithmFamily::Rsa,
        Params::Ecdsa(_) => AlgorithmFamily::Ec,
    };
    if key.family() != family {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingVerifier { algorithm: *algorithm, params, key: key.clone() }))
}

#[derive(Clone, Copy)]
enum Params {
    Rsa(&'static ring_sig::RsaParameters),
    Ecdsa(&'static ring_sig::EcdsaVerificationAlgorithm),
}

struct RingVerifier {
    algorithm: Algorithm,
    params: Params,
    key: DecodingKey,
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let verified = match (self.params, self.key.kind()) {
            (Params::Rsa(params), DecodingKeyKind::RsaModulusExponent { n, e }) => {
                ring_sig::RsaPublicKeyComponents { n, e }.verify(params, message, signature)
            }
            // A PKCS#1 RSAPublicKey, or an uncompressed EC point (what JWK x/y decode to).
            (Params::Rsa(params), DecodingKeyKind::SecretOrDer(der)) => {
                ring_sig::UnparsedPublicKey::new(params, der).verify(message, signature)
            }
            (Params::Ecdsa(params), DecodingKeyKind::SecretOrDer(point)) => {
                ring_sig::UnparsedPublicKey::new(params, point).verify(message, signature)
            }
            (Params::Ecdsa(_), DecodingKeyKind::RsaModulusExponent { .. }) => return Err(signature::Error::new()),
        };
        verified.map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// Without the local issuer, nothing in the process signs or reads private keys.
#[cfg(not(feature = "local-issuer"))]
fn unsupported<T>() -> Result<T> {
    Err(ErrorKind::Provider("signing is only built into the local development issuer".to_owned()).into())
}

fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    #[cfg(feature = "local-issuer")]
    return (rust_crypto::DEFAULT_PROVIDER.signer_factory)(algorithm, key);
    #[cfg(not(feature = "local-issuer"))]
    {
        let _ = (algorithm, key);
        unsupported()
    }
}

fn rsa_pub_components_from_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    #[cfg(feature = "local-issuer")]
    return (rust_crypto::DEFAULT_PROVIDER.key_utils.rsa_pub_components_from_private_key)(der);
    #[cfg(not(feature = "local-issuer"))]
    {
        let _ = der;
        unsupported()
    }
}

fn rsa_pub_components_from_public_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    #[cfg(feature = "local-issuer")]
    return (rust_crypto::DEFAULT_PROVIDER.key_utils.rsa_pub_components_from_public_key)(der);
    #[cfg(not(feature = "local-issuer"))]
    {
        let _ = der;
        unsupported()
    }
}

fn ec_pub_components_from_private_key(der: &[u8], algorithm: Algorithm) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    #[cfg(feature = "local-issuer")]
    return (rust_crypto::DEFAULT_PROVIDER.key_utils.ec_pub_components_from_private_key)(der, algorithm);
    #[cfg(not(feature = "local-issuer"))]
    {
        let _ = (der, algorithm);
        unsupported()
    }
}

fn ed_pub_components_from_private_key(_der: &[u8], _curve: &EllipticCurve) -> Result<Vec<u8>> {
    Err(ErrorKind::InvalidAlgorithm.into())
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(ring::digest::digest(algorithm, data).as_ref().to_vec())
}

#[cfg(all(test, feature = "local-issuer"))]
mod tests {
    use super::*;

    /// ring and RustCrypto agree on what verifies, for both key families.
    #[test]
    fn ring_verifies_what_rust_crypto_signs_and_nothing_else() {
        install();
        for algorithm in [Algorithm::RS256, Algorithm::ES256] {
            let issuer = super::super::LocalIssuer::generate("iss", "aud", algorithm).unwrap();
            let token = issuer.sign(&serde_json::json!({"sub": "x"})).unwrap();
            let (message, signature) = token.rsplit_once('.').unwrap();
            let jwk = &issuer.jwks().keys[0];
            let key = DecodingKey::from_jwk(jwk).unwrap();
            let ours = jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, algorithm).unwrap();
            let theirs = (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(&algorithm, &key)
                .unwrap()
                .verify(message.as_bytes(), &base64_url(signature))
                .is_ok();
            assert!(ours && theirs, "{algorithm:?}");
            let tampered = format!("{message}x");
            assert!(!jsonwebtoken::crypto::verify(signature, tampered.as_bytes(), &key, algorithm).unwrap(), "{algorithm:?}");
        }
        let rsa = DecodingKey::from_rsa_raw_components(&[1; 256], &[1, 0, 1]);
        assert!(verifier(&Algorithm::ES256, &rsa).is_err(), "an RSA key never verifies ECDSA");
    }

    fn base64_url(text: &str) -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).unwrap()
    }
}
